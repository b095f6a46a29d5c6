//! The bus layout (mono, stereo, 5.1, 7.1): channel order, WAV channel mask, the LFE channel, the
//! BS.775 fold-down to 2.0.

/// Bus layout, in WAV channel order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    Mono,
    Stereo,
    /// L R C LFE Ls Rs
    Surround51,
    /// L R C LFE Lrs Rrs Lss Rss (WAV order: back pair before side pair)
    Surround71,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
            Layout::Surround51 => 6,
            Layout::Surround71 => 8,
        }
    }
    /// The layout a file of `channels` channels is read as when no session says otherwise.
    pub fn for_channels(channels: usize) -> Option<Layout> {
        match channels {
            1 => Some(Layout::Mono),
            2 => Some(Layout::Stereo),
            6 => Some(Layout::Surround51),
            8 => Some(Layout::Surround71),
            _ => None,
        }
    }
    /// WAVE_FORMAT_EXTENSIBLE dwChannelMask.
    pub fn channel_mask(self) -> u32 {
        match self {
            Layout::Mono => 0x4,         // FC
            Layout::Stereo => 0x3,       // FL FR
            Layout::Surround51 => 0x60F, // FL FR FC LFE SL SR
            Layout::Surround71 => 0x63F, // FL FR FC LFE BL BR SL SR
        }
    }
    /// Index of the LFE channel, if any (excluded from loudness).
    pub fn lfe_channel(self) -> Option<usize> {
        match self {
            Layout::Surround51 | Layout::Surround71 => Some(3),
            _ => None,
        }
    }
    /// Channel labels in WAV order, as the file names of `split_channels` outputs use them
    /// (design/deliverables.md): Ls/Rs are 5.1's surrounds; 7.1 names its side (Lss/Rss) and
    /// rear (Lsr/Rsr) surrounds, the rear pair first as in the WAV order; mono is M.
    pub fn channel_labels(self) -> &'static [&'static str] {
        match self {
            Layout::Mono => &["M"],
            Layout::Stereo => &["L", "R"],
            Layout::Surround51 => &["L", "R", "C", "LFE", "Ls", "Rs"],
            Layout::Surround71 => &["L", "R", "C", "LFE", "Lsr", "Rsr", "Lss", "Rss"],
        }
    }
    /// The ITU-R BS.775 fold-down of this layout to 2.0 (design/deliverables.md "Output formats")
    /// as routes (bus channel, Lo/Ro channel, weight), in bus channel order: Lo = L + k·C + k·Ls,
    /// Ro = R + k·C + k·Rs, LFE dropped, k = 1/√2 (−3 dB; BS.775 writes it 0.7071). A 7.1 bus
    /// folds its back surrounds into the sides at k first (Ls = Lss + k·Lsr), so a back surround
    /// reaches Lo at k·k, computed in f64 (0.5). None for a layout with no fold-down (mono, stereo).
    pub fn fold_down_routes(self) -> Option<Vec<(usize, usize, f32)>> {
        let k = std::f64::consts::FRAC_1_SQRT_2;
        let (l, r, c) = ((0, 0, 1.0), (1, 1, 1.0), [(2, 0, k), (2, 1, k)]);
        let routes: Vec<(usize, usize, f64)> = match self {
            Layout::Surround51 => [l, r].into_iter().chain(c).chain([(4, 0, k), (5, 1, k)]).collect(),
            Layout::Surround71 => {
                [l, r].into_iter().chain(c).chain([(4, 0, k * k), (5, 1, k * k), (6, 0, k), (7, 1, k)]).collect()
            }
            Layout::Mono | Layout::Stereo => return None,
        };
        Some(routes.into_iter().map(|(from, to, w)| (from, to, w as f32)).collect())
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Mono => "mono",
            Layout::Stereo => "stereo",
            Layout::Surround51 => "5.1",
            Layout::Surround71 => "7.1",
        }
    }
}
