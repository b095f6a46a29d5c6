//! What a stem's WAVE_FORMAT_EXTENSIBLE channel mask says against the session's layout: nothing
//! (no mask, or the layout's own), only a different label for the same routing (a warning), or a
//! different routing (refused).
use crate::model::Layout;

/// What a speaker position does in the chain: the role decides routing and BS.1770 weight
/// (L, R, C 1.0; LFE excluded; surrounds 1.41), so two masks that give every channel the same
/// role route and meter identically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Left,
    Right,
    Centre,
    Lfe,
    SurroundLeft,
    SurroundRight,
    /// Any other speaker (front-of-centre, back centre, top): no place in our layouts.
    Other(u32),
}

/// dwChannelMask bits in WAV order (Microsoft, "WAVEFORMATEXTENSIBLE"; ksmedia.h SPEAKER_*).
const SPEAKERS: [(u32, &str, Role); 18] = [
    (0x1, "FL", Role::Left),
    (0x2, "FR", Role::Right),
    (0x4, "FC", Role::Centre),
    (0x8, "LFE", Role::Lfe),
    // Back and side surrounds are the same role: "5.1" is labelled either way in the wild (the
    // mask 0x3F, "5.1 (back)", and 0x60F, "5.1 (side)", which we write).
    (0x10, "BL", Role::SurroundLeft),
    (0x20, "BR", Role::SurroundRight),
    (0x40, "FLC", Role::Other(0x40)),
    (0x80, "FRC", Role::Other(0x80)),
    (0x100, "BC", Role::Other(0x100)),
    (0x200, "SL", Role::SurroundLeft),
    (0x400, "SR", Role::SurroundRight),
    (0x800, "TC", Role::Other(0x800)),
    (0x1000, "TFL", Role::Other(0x1000)),
    (0x2000, "TFC", Role::Other(0x2000)),
    (0x4000, "TFR", Role::Other(0x4000)),
    (0x8000, "TBL", Role::Other(0x8000)),
    (0x10000, "TBC", Role::Other(0x10000)),
    (0x20000, "TBR", Role::Other(0x20000)),
];

/// The speakers of a mask in WAV order, as "FL FR FC LFE SL SR".
pub fn describe(mask: u32) -> String {
    let names: Vec<&str> = SPEAKERS.iter().filter(|(b, _, _)| mask & b != 0).map(|(_, n, _)| *n).collect();
    let rest = mask & !SPEAKERS.iter().fold(0, |a, (b, _, _)| a | b);
    let mut s = names.join(" ");
    if rest != 0 {
        s += &format!("{}reserved bits {rest:#x}", if s.is_empty() { "" } else { " + " });
    }
    if s.is_empty() { "no speakers".to_string() } else { s }
}

fn roles(mask: u32) -> Vec<Role> {
    let mut r: Vec<Role> = SPEAKERS.iter().filter(|(b, _, _)| mask & b != 0).map(|(_, _, role)| *role).collect();
    let rest = mask & !SPEAKERS.iter().fold(0, |a, (b, _, _)| a | b);
    r.extend((0..32).filter(|i| rest & (1 << i) != 0).map(|i| Role::Other(1 << i)));
    r
}

/// How a stem's mask compares with what the session's layout routes.
#[derive(Debug, PartialEq, Eq)]
pub enum MaskVerdict {
    /// No mask, mask 0 ("no assignment"), or the layout's own.
    Agrees,
    /// Another label for the same routing: a warning saying which.
    Label(String),
    /// The mask gives some channel another role than the layout routes it as.
    Routing(String),
}

/// Compare a stem of `channels` channels whose header has `mask` with the session's `layout`.
/// A mono stem is routed by the session (to C, or to L and R at −3 dB) whatever its label, so its
/// mask is a label; a stem of the bus's channel count is routed channel n → bus channel n, so every
/// assigned channel must have the role the layout gives channel n.
pub fn compare(mask: Option<u32>, channels: usize, layout: Layout) -> MaskVerdict {
    let Some(mask) = mask.filter(|&m| m != 0) else { return MaskVerdict::Agrees };
    let ours = layout.channel_mask();
    if channels == 1 {
        // FC and FL are both the usual label of a mono file (hound and several DAWs write FL):
        // no news to the engineer. Anything else (an LFE or a surround) is worth a word.
        if mask == Layout::Mono.channel_mask() || mask == 0x1 {
            return MaskVerdict::Agrees;
        }
        return MaskVerdict::Label(format!(
            "a mono file labelled {mask:#x} ({}): the session routes a mono stem as {} whatever its label",
            describe(mask),
            if layout == Layout::Stereo { "L and R at -3 dB" } else { "its centre" }
        ));
    }
    if mask == ours {
        return MaskVerdict::Agrees;
    }
    let want = roles(ours);
    let have = roles(mask);
    // Bits beyond the channel count label nothing; channels beyond the bits are unassigned.
    let differs = have.iter().zip(&want).take(channels).any(|(h, w)| h != w);
    let text = format!(
        "channel mask {mask:#x} ({}), but the session's layout is {} ({ours:#x}: {} in WAV order)",
        describe(mask),
        layout.name(),
        describe(ours)
    );
    if differs || have.len() > channels {
        MaskVerdict::Routing(format!(
            "{text}: the file's channels would be routed and weighted as other speakers than they are; \
             re-export it with the layout's channel order, or set the session's layout to match"
        ))
    } else {
        MaskVerdict::Label(format!("{text}: the same routing under another label, rendered as {}", layout.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_against_layouts() {
        assert_eq!(compare(None, 6, Layout::Surround51), MaskVerdict::Agrees);
        assert_eq!(compare(Some(0), 6, Layout::Surround51), MaskVerdict::Agrees);
        assert_eq!(compare(Some(0x60F), 6, Layout::Surround51), MaskVerdict::Agrees);
        // 5.1 (back): the surrounds labelled back instead of side.
        assert!(matches!(compare(Some(0x3F), 6, Layout::Surround51), MaskVerdict::Label(_)));
        // Six channels that are not 5.1 in WAV order: no LFE, a back centre.
        assert!(matches!(compare(Some(0x137), 6, Layout::Surround51), MaskVerdict::Routing(_)));
        // 7.1 "wide" (front-of-centre pair) is not our 7.1 (side and back surrounds).
        assert!(matches!(compare(Some(0xFF), 8, Layout::Surround71), MaskVerdict::Routing(_)));
        // Stereo labelled as the side pair.
        assert!(matches!(compare(Some(0x600), 2, Layout::Stereo), MaskVerdict::Routing(_)));
        // A mono file labelled FC or FL is ordinary; labelled LFE, it is worth a warning.
        assert_eq!(compare(Some(0x1), 1, Layout::Stereo), MaskVerdict::Agrees);
        assert_eq!(compare(Some(0x4), 1, Layout::Surround51), MaskVerdict::Agrees);
        assert!(matches!(compare(Some(0x8), 1, Layout::Stereo), MaskVerdict::Label(_)));
        assert_eq!(describe(0x60F), "FL FR FC LFE SL SR");
    }
}
