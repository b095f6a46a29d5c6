//! What the `[delivery]` table says about a programme (design/deliverables.md): its timecode start at
//! a picture frame rate, turned into the sample count a BWF `bext` TimeReference holds, and the
//! origination date and time.

/// A picture frame rate `[delivery] frame_rate` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FrameRate {
    /// Timecode frames per timecode second: 24, 25, 30, 50 or 60.
    pub nominal: u32,
    /// The NTSC-family rates (23.976, 29.97, 59.94) run 1000/1001 slower than `nominal`.
    pub pulled_down: bool,
}

/// The rates accepted, as written in the session.
pub const FRAME_RATES: &str = "\"23.976\", \"24\", \"25\", \"29.97\", \"30\", \"50\", \"59.94\", \"60\"";

impl FrameRate {
    /// Parse one of `FRAME_RATES`; None for anything else.
    pub fn parse(s: &str) -> Option<FrameRate> {
        let (nominal, pulled_down) = match s {
            "23.976" => (24, true),
            "24" => (24, false),
            "25" => (25, false),
            "29.97" => (30, true),
            "30" => (30, false),
            "50" => (50, false),
            "59.94" => (60, true),
            "60" => (60, false),
            _ => return None,
        };
        Some(FrameRate { nominal, pulled_down })
    }

    /// As written in the session ("23.976").
    pub fn name(self) -> &'static str {
        match (self.nominal, self.pulled_down) {
            (24, true) => "23.976",
            (30, true) => "29.97",
            (60, true) => "59.94",
            (24, false) => "24",
            (25, false) => "25",
            (30, false) => "30",
            (50, false) => "50",
            _ => "60",
        }
    }

    /// Timecode labels dropped at the start of each minute but every tenth in drop-frame
    /// counting (SMPTE ST 12-1: 2 at 29.97, 4 at 59.94); None where drop-frame does not exist.
    fn dropped_per_minute(self) -> Option<u64> {
        match (self.nominal, self.pulled_down) {
            (30, true) => Some(2),
            (60, true) => Some(4),
            _ => None,
        }
    }
}

/// A timecode `HH:MM:SS:FF` (non-drop-frame) or `HH:MM:SS;FF` (drop-frame, SMPTE ST 12-1's
/// separator, 29.97 and 59.94 only), validated against its frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Timecode {
    pub hours: u32,
    pub minutes: u32,
    pub seconds: u32,
    pub frames: u32,
    pub drop_frame: bool,
    pub rate: FrameRate,
}

impl Timecode {
    /// Parse `text` at `rate`. The error is the rule broken, for a message naming the key.
    pub fn parse(text: &str, rate: FrameRate) -> Result<Timecode, String> {
        let form = "must be HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)";
        let b = text.as_bytes();
        if b.len() != 11 || b[2] != b':' || b[5] != b':' || !matches!(b[8], b':' | b';') {
            return Err(form.to_string());
        }
        let field = |at: usize| -> Result<u32, String> {
            let d = &text[at..at + 2];
            if d.bytes().all(|c| c.is_ascii_digit()) {
                Ok(d.parse().expect("two digits"))
            } else {
                Err(form.to_string())
            }
        };
        let (hours, minutes, seconds, frames) = (field(0)?, field(3)?, field(6)?, field(9)?);
        let drop_frame = b[8] == b';';
        if hours > 23 || minutes > 59 || seconds > 59 {
            return Err("is not a time of day (hours 00-23, minutes and seconds 00-59)".to_string());
        }
        if frames >= rate.nominal {
            return Err(format!(
                "frame {frames:02} does not exist at {} fps (frames 00-{:02})",
                rate.name(),
                rate.nominal - 1
            ));
        }
        if drop_frame {
            let Some(dropped) = rate.dropped_per_minute() else {
                return Err(format!(
                    "is drop-frame (';' before the frames), which exists only at 29.97 and 59.94 fps, not at {} fps",
                    rate.name()
                ));
            };
            if seconds == 0 && minutes % 10 != 0 && u64::from(frames) < dropped {
                return Err(format!(
                    "names frame {frames:02} of minute {minutes:02}, a label drop-frame counting skips \
                     (frames 00-{:02} of every minute not divisible by 10)",
                    dropped - 1
                ));
            }
        }
        Ok(Timecode { hours, minutes, seconds, frames, drop_frame, rate })
    }

    /// Picture frames since midnight (00:00:00:00). Drop-frame: the labels skipped before this
    /// one are not frames (SMPTE ST 12-1).
    pub fn frames_since_midnight(&self) -> u64 {
        let nominal = u64::from(self.rate.nominal);
        let total_minutes = u64::from(self.hours) * 60 + u64::from(self.minutes);
        let labels = (total_minutes * 60 + u64::from(self.seconds)) * nominal + u64::from(self.frames);
        match (self.drop_frame, self.rate.dropped_per_minute()) {
            (true, Some(d)) => labels - d * (total_minutes - total_minutes / 10),
            _ => labels,
        }
    }

    /// Samples since midnight at `sample_rate`: each frame lasts 1/nominal s, or 1001/(1000·nominal)
    /// s at a pulled-down rate (01:00:00:00 at 23.976 and 48 kHz: 86,400 frames of 2,002 samples).
    /// Rounded to the nearest sample where a frame is not a whole number of samples (29.97 at
    /// 48 kHz: 1,601.6), so the reference is the sample nearest the frame's start.
    pub fn samples_since_midnight(&self, sample_rate: u32) -> u64 {
        let (num, den) = if self.rate.pulled_down {
            (1001u128, 1000 * u128::from(self.rate.nominal))
        } else {
            (1, u128::from(self.rate.nominal))
        };
        let exact = u128::from(self.frames_since_midnight()) * u128::from(sample_rate) * num;
        ((2 * exact + den) / (2 * den)) as u64
    }
}

/// BWF OriginationDate ("yyyy-mm-dd") and OriginationTime ("hh:mm:ss", None when only a date
/// is known), EBU Tech 3285.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origination {
    pub date: String,
    pub time: Option<String>,
}

impl Origination {
    /// Parse `[delivery] date`: "YYYY-MM-DD", or with a time "YYYY-MM-DDTHH:MM:SS" (a space for
    /// the T also). The error is the rule broken.
    pub fn parse(text: &str) -> Result<Origination, String> {
        let form = "must be a date YYYY-MM-DD, or a date and time YYYY-MM-DDTHH:MM:SS";
        let (date, time) = match text.len() {
            10 => (text, None),
            19 if matches!(text.as_bytes()[10], b'T' | b' ') => (&text[..10], Some(&text[11..])),
            _ => return Err(form.to_string()),
        };
        let numbers = |s: &str, sep: u8, widths: &[usize]| -> Option<Vec<u32>> {
            let parts: Vec<&str> = s.split(sep as char).collect();
            (parts.len() == widths.len()
                && parts.iter().zip(widths).all(|(p, &w)| p.len() == w && p.bytes().all(|c| c.is_ascii_digit())))
            .then(|| parts.iter().map(|p| p.parse().expect("digits")).collect())
        };
        let d = numbers(date, b'-', &[4, 2, 2]).ok_or_else(|| form.to_string())?;
        let (year, month, day) = (d[0], d[1], d[2]);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(format!("is not a calendar date ({year:04}-{month:02} has no day {day:02})"));
        }
        let time = match time {
            None => None,
            Some(t) => {
                let v = numbers(t, b':', &[2, 2, 2]).ok_or_else(|| form.to_string())?;
                if v[0] > 23 || v[1] > 59 || v[2] > 59 {
                    return Err("is not a time of day (hours 00-23, minutes and seconds 00-59)".to_string());
                }
                Some(t.to_string())
            }
        };
        Ok(Origination { date: date.to_string(), time })
    }

    /// The UTC date and time of `secs` seconds after the Unix epoch (`SOURCE_DATE_EPOCH`, as
    /// reproducible-builds.org defines it); None past year 9999, which the field cannot hold.
    pub fn from_unix_seconds(secs: u64) -> Option<Origination> {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        (y <= 9999).then(|| Origination {
            date: format!("{y:04}-{m:02}-{d:02}"),
            time: Some(format!("{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)),
        })
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms", civil_from_days, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hour_at_23_976_is_172_972_800_samples_at_48k() {
        let tc = Timecode::parse("01:00:00:00", FrameRate::parse("23.976").unwrap()).unwrap();
        assert_eq!(tc.frames_since_midnight(), 86_400);
        assert_eq!(tc.samples_since_midnight(48_000), 172_972_800);
    }

    #[test]
    fn drop_frame_one_hour_at_29_97_is_107_892_frames() {
        // SMPTE drop-frame: one hour of labels is 108,000 less 2 x 54 dropped minutes.
        let tc = Timecode::parse("01:00:00;00", FrameRate::parse("29.97").unwrap()).unwrap();
        assert_eq!(tc.frames_since_midnight(), 107_892);
        // 107,892 frames x 1001/30000 s = 3599.9964 s: drop-frame timecode tracks the clock.
        assert_eq!(tc.samples_since_midnight(48_000), 172_799_827);
        assert!(Timecode::parse("00:01:00;01", FrameRate::parse("29.97").unwrap()).is_err());
        assert!(Timecode::parse("00:10:00;00", FrameRate::parse("29.97").unwrap()).is_ok());
        assert!(Timecode::parse("01:00:00;00", FrameRate::parse("25").unwrap()).is_err());
    }

    #[test]
    fn epoch_dates() {
        assert_eq!(Origination::from_unix_seconds(0).unwrap().date, "1970-01-01");
        let o = Origination::from_unix_seconds(1_796_385_600).unwrap(); // 2026-12-04 12:00:00 UTC
        assert_eq!((o.date.as_str(), o.time.as_deref()), ("2026-12-04", Some("12:00:00")));
        assert!(Origination::parse("2026-02-29").is_err());
        assert!(Origination::parse("2024-02-29").is_ok());
    }
}
