//! Session file parsing and validation (DESIGN.md "Session file"): the documented example, defaults,
//! path resolution, and one rejected file per rule, each naming the offending key and value.
use std::path::{Path, PathBuf};

use stemforge::error::Error;
use stemforge::model::{Dither, EqBand, Filter, Layout, OutputKind, Phase, SampleFormat};
use stemforge::session::Session;

/// DESIGN.md's example, written out in full (with `fir` left commented, as there).
const DESIGN_EXAMPLE: &str = r#"
name = "song-a"
layout = "stereo"                # bus layout: "mono" | "stereo" | "5.1" | "7.1" (WAV channel order)
reference_mix = "mix.wav"        # optional; `check` nulls the stem sum against it

[[stems]]
name = "vocals"
path = "stems/vocals.wav"        # WAV/RF64/AIFF/FLAC/...; every stem: same sample rate, bus layout or mono
gain_db = 0.5                    # default 0
mute = false                     # default false
eq = [                           # optional; designed into one FIR (see DSP)
  { type = "highpass",  freq_hz = 80.0, order = 2 },
  { type = "peak",      freq_hz = 3000.0, gain_db = 1.5, q = 1.0 },
  { type = "high_shelf", freq_hz = 10000.0, gain_db = 1.0, q = 0.707 },
]
# fir = "ir/vocal_eq.wav"        # alternative to eq: a user impulse response (mono, or one per channel)

[bus]
eq = [ { type = "low_shelf", freq_hz = 120.0, gain_db = -1.0, q = 0.707 } ]

[eq_design]
phase = "linear"                 # "linear" | "minimum"
taps = 8191

[master]
target_lufs = -14.0              # integrated loudness target (BS.1770-4 gated); omit = no normalisation
ceiling_dbtp = -1.0              # true-peak ceiling
lookahead_ms = 2.0
release_ms = 60.0
oversampling = 4                 # 1 | 2 | 4 | 8
# profile = "ebu-r128"           # sets target/ceiling: ebu-r128 (-23, -1), atsc-a85 (-24, -2), streaming (-14, -1)

[[outputs]]
path = "master.wav"
kind = "master"                  # "master" | "stems" (see below)
format = "pcm24"                 # "pcm16" | "pcm24" | "pcm32" | "f32"
dither = "tpdf"                  # "tpdf" | "none"; default tpdf for pcm16/pcm24, none otherwise
"#;

/// The smallest valid session; tests add or replace lines in it.
const MINIMAL: &str = r#"
name = "min"
layout = "stereo"

[[stems]]
name = "drums"
path = "drums.wav"

[[outputs]]
path = "master.wav"
kind = "master"
format = "pcm24"
"#;

fn parse(text: &str) -> Result<Session, Error> {
    Session::from_toml_str(text, Path::new("/proj/song/session.toml"))
}

/// The message of the Error::Input the text must be rejected with; it must name the session file.
fn rejected(text: &str) -> String {
    match parse(text) {
        Ok(s) => panic!("accepted an invalid session:\n{text}\nparsed as {s:#?}"),
        Err(Error::Input { path, msg, .. }) => {
            assert_eq!(path, Path::new("/proj/song/session.toml"), "error names another file: {msg}");
            msg
        }
        Err(other) => panic!("expected Error::Input, got {other:?}"),
    }
}

/// Rejected, with a message containing every one of `needles`.
fn assert_rejected(text: &str, needles: &[&str]) {
    let msg = rejected(text);
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} does not mention {n:?}");
    }
}

/// MINIMAL with extra keys in a stem (inserted after the stem's `path`).
fn with_stem_keys(extra: &str) -> String {
    MINIMAL.replace("path = \"drums.wav\"\n", &format!("path = \"drums.wav\"\n{extra}\n"))
}

/// MINIMAL with extra top-level tables appended.
fn with_tables(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}\n")
}

/// MINIMAL with its output's keys replaced.
fn with_output(keys: &str) -> String {
    let base = MINIMAL.split("[[outputs]]").next().unwrap();
    format!("{base}[[outputs]]\n{keys}\n")
}

#[test]
fn design_example_parses_to_its_values() {
    let s = parse(DESIGN_EXAMPLE).expect("DESIGN.md example must parse");
    assert_eq!(s.file, PathBuf::from("/proj/song/session.toml"));
    assert_eq!(s.dir, PathBuf::from("/proj/song"));
    assert_eq!(s.name, "song-a");
    assert_eq!(s.layout, Layout::Stereo);
    assert_eq!(s.reference_mix, Some(PathBuf::from("/proj/song/mix.wav")));
    assert_eq!(s.stems.len(), 1);
    let v = &s.stems[0];
    assert_eq!(v.name, "vocals");
    assert_eq!(v.path, PathBuf::from("/proj/song/stems/vocals.wav"));
    assert_eq!(v.gain_db, 0.5);
    assert!(!v.mute);
    assert_eq!(
        v.filter,
        Filter::Bands(vec![
            EqBand::Highpass { freq_hz: 80.0, order: 2 },
            EqBand::Peak { freq_hz: 3000.0, gain_db: 1.5, q: 1.0 },
            EqBand::HighShelf { freq_hz: 10000.0, gain_db: 1.0, q: 0.707 },
        ])
    );
    assert_eq!(s.bus_filter, Filter::Bands(vec![EqBand::LowShelf { freq_hz: 120.0, gain_db: -1.0, q: 0.707 }]));
    assert_eq!(s.eq_design.phase, Phase::Linear);
    assert_eq!(s.eq_design.taps, 8191);
    let m = s.master.as_ref().expect("[master] given");
    assert_eq!(m.target_lufs, Some(-14.0));
    assert_eq!(m.ceiling_dbtp, -1.0);
    assert_eq!(m.lookahead_ms, 2.0);
    assert_eq!(m.release_ms, 60.0);
    assert_eq!(m.oversampling, 4);
    assert_eq!(m.profile, None);
    assert_eq!(s.outputs.len(), 1);
    let o = &s.outputs[0];
    assert_eq!(o.path, PathBuf::from("master.wav"));
    assert_eq!(o.kind, OutputKind::Master);
    assert_eq!(o.format, SampleFormat::Pcm24);
    assert_eq!(o.dither, Dither::Tpdf);
    assert_eq!(s.check.null_threshold_db, -60.0);
    s.validate_sample_rate(48_000).expect("all bands are below 24 kHz");
    s.validate_sample_rate(44_100).expect("all bands are below 22.05 kHz");
}

#[test]
fn defaults() {
    let s = parse(MINIMAL).unwrap();
    let st = &s.stems[0];
    assert_eq!(st.gain_db, 0.0);
    assert!(!st.mute);
    assert_eq!(st.filter, Filter::None);
    assert_eq!(s.bus_filter, Filter::None);
    assert_eq!(s.reference_mix, None);
    assert_eq!(s.eq_design.phase, Phase::Linear);
    assert_eq!(s.eq_design.taps, 8191);
    assert_eq!(s.master, None, "no [master]: no normalisation and no limiter");
    assert_eq!(s.outputs[0].dither, Dither::Tpdf, "pcm24 defaults to tpdf");
    assert_eq!(s.check.null_threshold_db, -60.0);

    let m = parse(&with_tables("[master]")).unwrap().master.unwrap();
    assert_eq!(m.target_lufs, None, "no target: limiter only");
    assert_eq!((m.ceiling_dbtp, m.lookahead_ms, m.release_ms, m.oversampling), (-1.0, 2.0, 60.0, 4));

    let bands = with_stem_keys("eq = [ { type = \"lowpass\", freq_hz = 12000 } ]");
    assert_eq!(
        parse(&bands).unwrap().stems[0].filter,
        Filter::Bands(vec![EqBand::Lowpass { freq_hz: 12000.0, order: 2 }]),
        "order defaults to 2; an integer freq_hz is accepted"
    );

    for (format, dither) in
        [("pcm16", Dither::Tpdf), ("pcm24", Dither::Tpdf), ("pcm32", Dither::None), ("f32", Dither::None)]
    {
        let s = parse(&with_output(&format!("path = \"m.wav\"\nkind = \"master\"\nformat = \"{format}\""))).unwrap();
        assert_eq!(s.outputs[0].dither, dither, "default dither for {format}");
    }
    let s = parse(&with_output("path = \"m.wav\"\nkind = \"master\"\nformat = \"pcm16\"\ndither = \"none\"")).unwrap();
    assert_eq!(s.outputs[0].dither, Dither::None, "an explicit dither wins");
}

#[test]
fn profiles_set_target_and_ceiling() {
    for (name, target, ceiling) in [
        ("ebu-r128", -23.0, -1.0),
        ("ebu-r128-s1", -23.0, -1.0),
        ("atsc-a85", -24.0, -2.0),
        ("arib-tr-b32", -24.0, -1.0),
        ("streaming", -14.0, -1.0),
        ("apple-music", -16.0, -1.0),
    ] {
        let p = stemforge::model::Profile::named(name).unwrap();
        assert_eq!((p.target_lufs, p.ceiling_dbtp), (target, ceiling), "the table's {name}");
        let m = parse(&with_tables(&format!("[master]\nprofile = \"{name}\""))).unwrap().master.unwrap();
        assert_eq!((m.target_lufs, m.ceiling_dbtp), (Some(target), ceiling), "profile {name}");
        assert_eq!(m.profile.as_deref(), Some(name));
    }
    assert_eq!(stemforge::model::Profile::named("ebu"), None);
    assert_rejected(&with_tables("[master]\nprofile = \"ebu\""), &["profile", "\"ebu\"", "ebu-r128"]);
}

#[test]
fn paths_resolve_against_the_session_folder() {
    let text = with_tables("[bus]\nfir = \"/abs/bus_ir.wav\"")
        .replace("name = \"min\"", "name = \"min\"\nreference_mix = \"../mixes/ref.wav\"")
        .replace("path = \"drums.wav\"", "path = \"sub/drums.wav\"\nfir = \"ir/drums.wav\"");
    let s = Session::from_toml_str(&text, Path::new("projects/a/s.toml")).unwrap();
    assert_eq!(s.dir, PathBuf::from("projects/a"));
    assert_eq!(s.stems[0].path, PathBuf::from("projects/a/sub/drums.wav"));
    assert_eq!(s.stems[0].filter, Filter::File(PathBuf::from("projects/a/ir/drums.wav")));
    assert_eq!(s.reference_mix, Some(PathBuf::from("projects/a/../mixes/ref.wav")));
    assert_eq!(s.bus_filter, Filter::File(PathBuf::from("/abs/bus_ir.wav")), "absolute kept");

    // A bare file name: its folder is the current one.
    let s = Session::from_toml_str(MINIMAL, Path::new("s.toml")).unwrap();
    assert_eq!(s.dir, PathBuf::from("."));
    assert_eq!(s.stems[0].path, PathBuf::from("./drums.wav"));

    // Output paths stay relative (to --out-dir); "./" is dropped so equal paths compare equal.
    let s = parse(&with_output("path = \"./deliver/m.wav\"\nkind = \"master\"\nformat = \"f32\"")).unwrap();
    assert_eq!(s.outputs[0].path, PathBuf::from("deliver/m.wav"));
}

#[test]
fn stems_output_paths_and_unmuted_stems() {
    let text = format!(
        "{}\n[[stems]]\nname = \"bass\"\npath = \"bass.wav\"\nmute = true\n\n[[stems]]\nname = \"keys\"\npath = \"k.wav\"\n\n\
         [[outputs]]\npath = \"stems-out\"\nkind = \"stems\"\nformat = \"pcm24\"\n",
        MINIMAL
    );
    let s = parse(&text).unwrap();
    let o = &s.outputs[1];
    assert_eq!(o.kind, OutputKind::Stems);
    assert_eq!(s.stem_output_path(o, &s.stems[0]), PathBuf::from("stems-out/drums.wav"));
    assert_eq!(s.stem_output_path(o, &s.stems[2]), PathBuf::from("stems-out/keys.wav"));
    let unmuted: Vec<(usize, &str)> = s.unmuted_stems().map(|(i, st)| (i, st.name.as_str())).collect();
    assert_eq!(unmuted, vec![(0, "drums"), (2, "keys")]);
}

#[test]
fn unknown_keys_are_named_with_their_table_and_line() {
    // Top level: line 3 of the text below.
    let msg = rejected(&MINIMAL.replace("layout = \"stereo\"", "layout = \"stereo\"\nsample_rate = 48000"));
    assert!(msg.contains("unknown key `sample_rate`") && msg.contains("line 4"), "{msg}");

    // Inside a [[stems]] table: the third stem, index 2.
    let text = format!(
        "{MINIMAL}\n[[stems]]\nname = \"b\"\npath = \"b.wav\"\n[[stems]]\nname = \"c\"\npath = \"c.wav\"\ngian_db = 1.0\n"
    );
    let msg = rejected(&text);
    assert!(msg.contains("stems[2]: unknown key `gian_db`"), "{msg}");
    let line = text.lines().position(|l| l.starts_with("gian_db")).unwrap() + 1;
    assert!(msg.contains(&format!("line {line}")), "{msg} should give line {line}");

    // Inside an eq band: a key no band has, and a key another band type has.
    assert_rejected(
        &with_stem_keys("eq = [ { type = \"peak\", freq_hz = 100.0, gain_db = 1.0, q = 1.0, gian = 2.0 } ]"),
        &["stems[0].eq[0]", "unknown key `gian`"],
    );
    assert_rejected(
        &with_stem_keys(
            "eq = [ { type = \"peak\", freq_hz = 100.0, gain_db = 1.0, q = 1.0 },\n { type = \"highpass\", freq_hz = 30.0, q = 0.7 } ]",
        ),
        &["stems[0].eq[1].q", "unknown key `q` for a highpass band"],
    );
    // Inside other tables.
    assert_rejected(
        &with_tables("[master]\ntarget_lufs = -14.0\nceiling = -1.0"),
        &["master", "unknown key `ceiling`"],
    );
    assert_rejected(&with_tables("[eq_design]\ntap = 1023"), &["eq_design", "unknown key `tap`"]);
    assert_rejected(&with_tables("[bus]\ngain_db = 1.0"), &["bus", "unknown key `gain_db`"]);
    assert_rejected(&with_tables("[check]\nthreshold = -50.0"), &["check", "unknown key `threshold`"]);
    assert_rejected(
        &MINIMAL.replace("format = \"pcm24\"", "format = \"pcm24\"\nbits = 24"),
        &["outputs[0]", "unknown key `bits`"],
    );
    // An unknown table is an unknown key too.
    assert_rejected(&with_tables("[masterr]\ntarget_lufs = -14.0"), &["unknown key `masterr`"]);
}

#[test]
fn wrong_types_and_missing_keys_are_clear() {
    assert_rejected(&with_stem_keys("gain_db = \"loud\""), &["stems[0].gain_db", "invalid type", "loud"]);
    assert_rejected(&with_tables("[eq_design]\ntaps = 1023.5"), &["eq_design.taps", "invalid type"]);
    assert_rejected(&MINIMAL.replace("path = \"drums.wav\"\n", ""), &["stems[0]", "missing required key `path`"]);
    assert_rejected(&MINIMAL.replace("name = \"min\"\n", ""), &["missing required key `name`"]);
    assert_rejected(&MINIMAL.replace("layout = \"stereo\"\n", ""), &["missing required key `layout`"]);
    assert_rejected(&MINIMAL.replace("kind = \"master\"\n", ""), &["outputs[0]", "missing required key `kind`"]);
    assert_rejected(
        &with_stem_keys("eq = [ { type = \"peak\", freq_hz = 100.0, q = 1.0 } ]"),
        &["stems[0].eq[0]", "missing required key `gain_db`"],
    );
    assert_rejected(
        &with_stem_keys("eq = [ { freq_hz = 100.0 } ]"),
        &["stems[0].eq[0]", "missing required key `type`"],
    );
    assert_rejected("name = \"x\"\nlayout = [\n", &["invalid TOML", "line 2"]);
}

#[test]
fn invalid_values_name_key_and_value() {
    let cases: Vec<(String, &[&str])> = vec![
        (MINIMAL.replace("name = \"min\"", "name = \"\""), &["name", "empty"]),
        (MINIMAL.replace("\"stereo\"", "\"quad\""), &["layout", "\"quad\""]),
        (
            MINIMAL.split("[[stems]]").next().unwrap().to_string()
                + "[[outputs]]\npath = \"m.wav\"\nkind = \"master\"\nformat = \"f32\"\n",
            &["no stems"],
        ),
        (MINIMAL.split("[[outputs]]").next().unwrap().to_string(), &["no outputs"]),
        (MINIMAL.replace("name = \"drums\"", "name = \"\""), &["stems[0].name", "empty"]),
        (MINIMAL.replace("name = \"drums\"", "name = \"dr/ums\""), &["stems[0].name", "\"dr/ums\"", "file name"]),
        (MINIMAL.replace("name = \"drums\"", "name = \"..\""), &["stems[0].name", "\"..\""]),
        (with_stem_keys("gain_db = 30.0"), &["stems[0].gain_db", "30", "[-120, 24]"]),
        (with_stem_keys("gain_db = nan"), &["stems[0].gain_db", "NaN"]),
        (
            with_stem_keys("eq = [ { type = \"peek\", freq_hz = 100.0, gain_db = 1.0, q = 1.0 } ]"),
            &["stems[0].eq[0].type", "\"peek\"", "peak"],
        ),
        (
            with_stem_keys("eq = [ { type = \"lowpass\", freq_hz = 100.0, order = 9 } ]"),
            &["stems[0].eq[0].order", "9", "1..=8"],
        ),
        (
            with_stem_keys("eq = [ { type = \"notch\", freq_hz = 0.0, q = 4.0 } ]"),
            &["stems[0].eq[0].freq_hz", "0", "> 0"],
        ),
        (
            with_stem_keys("eq = [ { type = \"bandpass\", freq_hz = 100.0, q = 0.0 } ]"),
            &["stems[0].eq[0].q", "q = 0", "(0, 50]"],
        ),
        (with_stem_keys("eq = [ { type = \"bandpass\", freq_hz = 100.0, q = 60.0 } ]"), &["stems[0].eq[0].q", "60"]),
        (
            with_stem_keys("eq = [ { type = \"tilt\", freq_hz = 1000.0, gain_db = -31.0 } ]"),
            &["stems[0].eq[0].gain_db", "-31", "[-30, 30]"],
        ),
        (
            with_stem_keys("eq = [ { type = \"tilt\", freq_hz = 1000.0, gain_db = 1.0 } ]\nfir = \"ir.wav\""),
            &["stems[0]", "`eq`", "`fir`"],
        ),
        (with_tables("[bus]\neq = []\nfir = \"ir.wav\""), &["bus", "`eq`", "`fir`"]),
        (with_tables("[eq_design]\ntaps = 8192"), &["eq_design.taps", "8192", "odd"]),
        (with_tables("[eq_design]\ntaps = 13"), &["eq_design.taps", "13", "15..=65535"]),
        (with_tables("[eq_design]\nphase = \"mixed\""), &["eq_design.phase", "\"mixed\""]),
        (with_tables("[master]\noversampling = 3"), &["master.oversampling", "3", "1, 2, 4 or 8"]),
        (with_tables("[master]\ntarget_lufs = -3.0"), &["master.target_lufs", "-3", "[-70, -5]"]),
        (with_tables("[master]\nceiling_dbtp = 0.5"), &["master.ceiling_dbtp", "0.5", "[-20, 0]"]),
        (with_tables("[master]\nlookahead_ms = 0.0"), &["master.lookahead_ms", "0", "(0, 50]"]),
        (with_tables("[master]\nrelease_ms = 6000.0"), &["master.release_ms", "6000", "[1, 5000]"]),
        (with_tables("[master]\nprofile = \"ebu-r128\"\ntarget_lufs = -23.0"), &["profile", "target_lufs", "ebu-r128"]),
        (with_tables("[master]\nprofile = \"streaming\"\nceiling_dbtp = -2.0"), &["profile", "ceiling_dbtp"]),
        (with_tables("[check]\nnull_threshold_db = 0.0"), &["check.null_threshold_db", "0", "[-200, 0)"]),
        (
            with_output("path = \"../m.wav\"\nkind = \"master\"\nformat = \"pcm24\""),
            &["outputs[0].path", "\"../m.wav\"", "`..`"],
        ),
        (with_output("path = \"a/../../m.wav\"\nkind = \"master\"\nformat = \"pcm24\""), &["outputs[0].path", "`..`"]),
        (
            with_output("path = \"/tmp/m.wav\"\nkind = \"master\"\nformat = \"pcm24\""),
            &["outputs[0].path", "\"/tmp/m.wav\"", "relative"],
        ),
        (with_output("path = \"\"\nkind = \"master\"\nformat = \"pcm24\""), &["outputs[0].path", "\"\""]),
        (with_output("path = \"m.wav\"\nkind = \"mix\"\nformat = \"pcm24\""), &["outputs[0].kind", "\"mix\""]),
        (with_output("path = \"m.wav\"\nkind = \"master\"\nformat = \"pcm8\""), &["outputs[0].format", "\"pcm8\""]),
        (
            with_output("path = \"m.wav\"\nkind = \"master\"\nformat = \"pcm24\"\ndither = \"shaped\""),
            &["outputs[0].dither", "\"shaped\""],
        ),
        (
            with_output("path = \"m.wav\"\nkind = \"master\"\nformat = \"f32\"\ndither = \"tpdf\""),
            &["outputs[0].dither", "\"tpdf\"", "\"f32\""],
        ),
        (
            with_tables("[[outputs]]\npath = \"./master.wav\"\nkind = \"master\"\nformat = \"f32\""),
            &["outputs[1].path", "outputs[0]", "unique"],
        ),
        (
            with_tables(
                "[[outputs]]\npath = \"st\"\nkind = \"stems\"\nformat = \"f32\"\n[[outputs]]\npath = \"st/drums.wav\"\nkind = \"master\"\nformat = \"f32\"",
            ),
            &["outputs[2]", "st/drums.wav", "outputs[1]"],
        ),
    ];
    for (text, needles) in &cases {
        assert_rejected(text, needles);
    }
}

#[test]
fn duplicate_stem_names_are_rejected() {
    let text = format!("{MINIMAL}\n[[stems]]\nname = \"Drums\"\npath = \"d2.wav\"\n");
    assert_rejected(&text, &["stems[1].name", "\"Drums\"", "stems[0]", "unique"]);
    let text = format!("{MINIMAL}\n[[stems]]\nname = \"drums\"\npath = \"d2.wav\"\n");
    assert_rejected(&text, &["stems[1].name", "\"drums\"", "unique"]);
}

#[test]
fn validate_sample_rate_checks_nyquist_and_lookahead() {
    let text = with_stem_keys(
        "eq = [ { type = \"peak\", freq_hz = 1000.0, gain_db = 1.0, q = 1.0 },\n { type = \"lowpass\", freq_hz = 30000.0 } ]",
    );
    let s = parse(&text).unwrap();
    s.validate_sample_rate(96_000).expect("30 kHz is below 48 kHz");
    match s.validate_sample_rate(48_000) {
        Err(Error::Input { msg, .. }) => {
            for n in ["stems[0]", "drums", "eq[1]", "30000", "24000", "48000"] {
                assert!(msg.contains(n), "{msg:?} lacks {n:?}");
            }
        }
        other => panic!("30 kHz band at 48 kHz accepted: {other:?}"),
    }

    let bus =
        parse(&with_tables("[bus]\neq = [ { type = \"high_shelf\", freq_hz = 22050.0, gain_db = 1.0, q = 0.7 } ]"))
            .unwrap();
    bus.validate_sample_rate(48_000).unwrap();
    let msg = format!("{}", bus.validate_sample_rate(44_100).unwrap_err());
    assert!(msg.contains("bus.eq[0]") && msg.contains("22050"), "{msg}");

    // 0.01 ms at 44.1 kHz is 0.441 frames, which rounds to 0: no look-ahead at all.
    let short = parse(&with_tables("[master]\nlookahead_ms = 0.01")).unwrap();
    let msg = format!("{}", short.validate_sample_rate(44_100).unwrap_err());
    assert!(msg.contains("master.lookahead_ms") && msg.contains("0.01"), "{msg}");
    short.validate_sample_rate(192_000).expect("0.01 ms is 1.92 frames at 192 kHz, rounding to 2");
    assert_eq!(short.master.as_ref().unwrap().lookahead_frames(192_000), 2);
    assert_eq!(parse(DESIGN_EXAMPLE).unwrap().master.unwrap().lookahead_frames(48_000), 96);
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, MINIMAL).unwrap();
    let s = Session::load(&file).unwrap();
    assert_eq!(s.stems[0].path, dir.path().join("drums.wav"));
    match Session::load(&dir.path().join("missing.toml")) {
        Err(Error::Input { path, msg, .. }) => {
            assert_eq!(path, dir.path().join("missing.toml"));
            assert!(msg.contains("cannot read"), "{msg}");
        }
        other => panic!("missing file: {other:?}"),
    }
}

#[test]
fn a_process_chain_names_its_bad_entries() {
    // No chain is an empty chain.
    assert!(parse(MINIMAL).unwrap().stems[0].process.is_empty());
    assert!(parse(&with_stem_keys("process = []")).unwrap().stems[0].process.is_empty());
    // An entry without a type, with a type that is no stage, or with a type that is not a string.
    assert_rejected(
        &with_stem_keys("process = [{ width = 1.0, wdth = 2 }]"),
        &["stems[0].process[0]", "`type`", "line"],
    );
    assert_rejected(
        &with_stem_keys("process = [{ type = \"reverb\" }]"),
        &["stems[0].process[0].type", "\"reverb\"", "is not one of", "line"],
    );
    assert_rejected(&with_stem_keys("process = [{ type = 3 }]"), &["stems[0].process[0].type", "string"]);
}

#[test]
fn width_keys_are_checked() {
    use stemforge::model::{Process, Width};
    let s = parse(&with_stem_keys(
        "process = [{ type = \"width\", width = 1.5 }, { type = \"width\", mono_below_hz = 120 }]\n\
         [eq_design]\ntaps = 4095",
    ))
    .unwrap();
    let w = |width, mono_below_hz| Process::Width(Width { width, mono_below_hz, taps: 4095 });
    assert_eq!(s.stems[0].process, [w(1.5, 0.0), w(1.0, 120.0)]);
    // The high-pass is as long as the EQ, and its latency counts.
    assert_eq!([0, 1].map(|i| stemforge::dsp::process_latency(&s.stems[0].process[i], 48_000)), [0, 2047]);
    assert_rejected(
        &with_stem_keys("process = [{ type = \"width\", mono_below_hz = 5000 }]"),
        &["stems[0].process[0].mono_below_hz", "[0, 1000]"],
    );
    assert_rejected(
        &with_stem_keys("process = [{ type = \"width\", width = -0.5 }]"),
        &["stems[0].process[0].width", "-0.5", "[0, 4]", "line"],
    );
    assert_rejected(&with_stem_keys("process = [{ type = \"width\", width = \"wide\" }]"), &["width", "number"]);
    assert_rejected(
        &with_stem_keys("process = [{ type = \"width\", widht = 1.2 }]"),
        &["stems[0].process[0].widht", "unknown key `widht` for a width stage", "`width`"],
    );
}

#[test]
fn compressor_keys_are_checked() {
    use stemforge::model::{Compressor, Detector, Process};
    let s = parse(&with_stem_keys(
        "process = [{ type = \"compressor\", threshold_db = -18.0 }, { type = \"compressor\", threshold_db = -6, \
         ratio = 2.0, knee_db = 6.0, attack_ms = 1.0, release_ms = 250.0, detector = \"rms\", rms_ms = 20.0, \
         link = 0.5, sidechain_hpf_hz = 80.0, lookahead_ms = 5.0, makeup_db = 3.0, mix = 0.7 }]",
    ))
    .unwrap();
    let defaults = Compressor {
        threshold_db: -18.0,
        ratio: 4.0,
        knee_db: 0.0,
        attack_ms: 10.0,
        release_ms: 100.0,
        detector: Detector::Peak,
        rms_ms: 10.0,
        link: 1.0,
        sidechain_hpf_hz: 0.0,
        lookahead_ms: 0.0,
        makeup_db: 0.0,
        mix: 1.0,
        key: None,
    };
    let all = Compressor {
        threshold_db: -6.0,
        ratio: 2.0,
        knee_db: 6.0,
        attack_ms: 1.0,
        release_ms: 250.0,
        detector: Detector::Rms,
        rms_ms: 20.0,
        link: 0.5,
        sidechain_hpf_hz: 80.0,
        lookahead_ms: 5.0,
        makeup_db: 3.0,
        mix: 0.7,
        key: None,
    };
    assert_eq!(s.stems[0].process, [Process::Compressor(defaults), Process::Compressor(all.clone())]);
    assert_eq!(stemforge::dsp::process_latency(&Process::Compressor(all), 48_000), 240);

    let c = |keys: &str| with_stem_keys(&format!("process = [{{ type = \"compressor\", {keys} }}]"));
    // threshold_db has no default: its absence is named, with the entry's line.
    assert_rejected(
        &with_stem_keys("process = [{ type = \"compressor\", ratio = 3.0 }]"),
        &["stems[0].process[0]", "missing required key `threshold_db`", "compressor", "line"],
    );
    for (keys, key, range) in [
        ("threshold_db = 3.0", "threshold_db", "[-80, 0]"),
        ("threshold_db = -10, ratio = 0.5", "ratio", "[1, 100]"),
        ("threshold_db = -10, knee_db = -1", "knee_db", "[0, 48]"),
        ("threshold_db = -10, attack_ms = 0", "attack_ms", "[0.001, 10000]"),
        ("threshold_db = -10, release_ms = -5", "release_ms", "[0.001, 10000]"),
        ("threshold_db = -10, rms_ms = 2000", "rms_ms", "[0.01, 1000]"),
        ("threshold_db = -10, link = 1.5", "link", "[0, 1]"),
        ("threshold_db = -10, sidechain_hpf_hz = -20", "sidechain_hpf_hz", "[0, 2000]"),
        ("threshold_db = -10, lookahead_ms = 25", "lookahead_ms", "[0, 20]"),
        ("threshold_db = -10, makeup_db = 30", "makeup_db", "[-24, 24]"),
        ("threshold_db = -10, mix = 2", "mix", "[0, 1]"),
    ] {
        assert_rejected(&c(keys), &[&format!("stems[0].process[0].{key}"), range, "compressor", "line"]);
    }
    assert_rejected(
        &c("threshold_db = -10, detector = \"loud\""),
        &["stems[0].process[0].detector", "\"loud\"", "\"peak\", \"rms\"", "line"],
    );
    assert_rejected(&c("threshold_db = -10, detector = 1"), &["detector", "string"]);
    assert_rejected(&c("threshold_db = -10, key = 3"), &["stems[0].process[0].key", "string"]);
}

/// `key` (ducking): another unmuted stem of the session, by name, in any order, with no cycle.
#[test]
fn compressor_key_names_another_unmuted_stem() {
    use stemforge::model::Process;
    // drums (stems[0]) keyed by `dx`; `music` (stems[2]) keyed by drums: a chain, no cycle.
    let session = |drums: &str, dx: &str, music: &str| {
        let base = with_stem_keys(drums);
        let (head, tail) = base.split_at(base.find("[[outputs]]").unwrap());
        format!(
            "{head}[[stems]]\nname = \"dx\"\npath = \"dx.wav\"\n{dx}\n\n[[stems]]\nname = \"music\"\n\
             path = \"m.wav\"\n{music}\n\n{tail}"
        )
    };
    let keyed = |k: &str| format!("process = [{{ type = \"compressor\", threshold_db = -30, key = \"{k}\" }}]");
    let s = parse(&session(&keyed("dx"), "", &keyed("drums"))).unwrap();
    let key = |i: usize| match &s.stems[i].process[0] {
        Process::Compressor(c) => c.key.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(key(0).as_deref(), Some("dx"));
    assert_eq!(key(2).as_deref(), Some("drums"));

    assert_rejected(
        &session(&keyed("dialogue"), "", ""),
        &["stems[0].process[0].key", "\"drums\"", "\"dialogue\"", "names no stem", "line"],
    );
    assert_rejected(
        &session("", "", &keyed("music")),
        &["stems[2].process[0].key", "\"music\"", "the stem itself", "line"],
    );
    assert_rejected(
        &session("", "mute = true", &keyed("dx")),
        &["stems[2].process[0].key", "\"music\"", "\"dx\"", "muted", "line"],
    );
    // A cycle through a chain: drums keys dx, dx keys music, music keys drums.
    let msg = rejected(&session(&keyed("dx"), &keyed("music"), &keyed("drums")));
    for n in ["stems[0].process[0].key", "\"drums\"", "\"dx\"", "cycle", "line"] {
        assert!(msg.contains(n), "message {msg:?} does not mention {n:?}");
    }
    // Two stems keying each other.
    assert_rejected(&session(&keyed("dx"), &keyed("drums"), ""), &["stems[0].process[0].key", "cycle", "\"dx\""]);
}

#[test]
fn saturation_keys_are_checked() {
    use stemforge::model::{Process, Saturation};
    let s = parse(&with_stem_keys(
        "process = [{ type = \"saturation\", drive_db = 12, mix = 0.5, oversampling = 8 }, { type = \"saturation\" }]",
    ))
    .unwrap();
    assert_eq!(
        s.stems[0].process,
        [
            Process::Saturation(Saturation { drive_db: 12.0, mix: 0.5, oversampling: 8 }),
            Process::Saturation(Saturation { drive_db: 6.0, mix: 1.0, oversampling: 4 }),
        ]
    );
    assert_rejected(
        &with_stem_keys("process = [{ type = \"saturation\", oversampling = 3 }]"),
        &["stems[0].process[0].oversampling", "3", "one of 1, 2, 4, 8", "saturation", "line"],
    );
    assert_rejected(
        &with_stem_keys("process = [{ type = \"saturation\", drive_db = -1.0 }]"),
        &["stems[0].process[0].drive_db", "-1", "[0, 48]"],
    );
    assert_rejected(&with_stem_keys("process = [{ type = \"saturation\", mix = 1.5 }]"), &["mix", "1.5", "[0, 1]"]);
    assert_rejected(
        &with_stem_keys("process = [{ type = \"saturation\", drive = 6.0 }]"),
        &["unknown key `drive` for a saturation stage", "`drive_db`", "`mix`", "`oversampling`"],
    );
}

#[test]
fn transient_keys_are_checked() {
    use stemforge::model::{Process, Transient};
    let s = parse(&with_stem_keys(
        "process = [{ type = \"transient\", attack_db = 6, sustain_db = -3.5, fast_ms = 0.5, slow_ms = 30, \
         release_ms = 200 }, { type = \"transient\" }]",
    ))
    .unwrap();
    assert_eq!(
        s.stems[0].process,
        [
            Process::Transient(Transient {
                attack_db: 6.0,
                sustain_db: -3.5,
                fast_ms: 0.5,
                slow_ms: 30.0,
                release_ms: 200.0
            }),
            Process::Transient(Transient {
                attack_db: 0.0,
                sustain_db: 0.0,
                fast_ms: 1.0,
                slow_ms: 20.0,
                release_ms: 150.0
            }),
        ]
    );
    assert_rejected(
        &with_stem_keys("process = [{ type = \"transient\", attack_db = 30 }]"),
        &["stems[0].process[0].attack_db", "30", "[-24, 24]", "line"],
    );
    assert_rejected(&with_stem_keys("process = [{ type = \"transient\", release_ms = 0 }]"), &["release_ms", "0"]);
    assert_rejected(&with_stem_keys("process = [{ type = \"transient\", fast_ms = -1 }]"), &["fast_ms", "-1"]);
    assert_rejected(
        &with_stem_keys("process = [{ type = \"transient\", attack = 3 }]"),
        &["unknown key `attack` for a transient stage", "`attack_db`", "`release_ms`"],
    );
}

/// `[bus] process` (design/mastering.md): read as a stem's chain, in order; checked like one (an
/// unknown stage or key, a value out of range, each named with its line); `width` needs a stereo
/// bus; a stage the stems cannot share (`saturation`) needs `allow_residual` on every stems output,
/// and `allow_residual` is refused on a master output.
#[test]
fn bus_process_is_read_and_checked() {
    use stemforge::model::Process;
    let bus = |chain: &str| with_tables(&format!("[bus]\nprocess = [{chain}]"));
    let s = parse(&bus(
        "{ type = \"compressor\", threshold_db = -12.0, ratio = 1.5 }, { type = \"width\", width = 1.2 }, { type = \"transient\" }",
    ))
    .unwrap();
    assert_eq!(s.bus_process.len(), 3);
    assert!(matches!(&s.bus_process[0], Process::Compressor(c) if c.threshold_db == -12.0 && c.ratio == 1.5));
    assert!(matches!(&s.bus_process[1], Process::Width(w) if w.width == 1.2));
    assert!(matches!(&s.bus_process[2], Process::Transient(_)));
    assert_rejected(&bus("{ type = \"reverb\" }"), &["bus.process[0].type", "\"reverb\"", "compressor", "line"]);
    assert_rejected(
        &bus("{ type = \"compressor\", threshold_db = -12.0, ratoi = 2.0 }"),
        &["bus.process[0].ratoi", "unknown key", "line"],
    );
    assert_rejected(
        &bus("{ type = \"compressor\", threshold_db = -12.0, ratio = 0.5 }"),
        &["bus.process[0].ratio", "line"],
    );
    assert_rejected(
        &bus("{ type = \"compressor\", threshold_db = -12.0, key = \"drums\" }"),
        &["bus.process[0].key", "\"drums\"", "no key", "line"],
    );
    let surround = bus("{ type = \"width\", width = 1.2 }").replace("layout = \"stereo\"", "layout = \"5.1\"");
    assert_rejected(&surround, &["bus.process[0]", "width", "stereo", "6"]);
    // A residual stage: fine with a master output only ...
    let saturated = bus("{ type = \"saturation\", drive_db = 6.0 }");
    assert!(parse(&saturated).is_ok());
    // ... refused with a stems output, unless that output allows the residual.
    let stems = "[[outputs]]\npath = \"stems\"\nkind = \"stems\"\nformat = \"f32\"\n";
    assert_rejected(
        &format!("{saturated}\n{stems}"),
        &["bus.process[0]", "saturation", "outputs[1]", "allow_residual = true", "line"],
    );
    let allowed = parse(&format!("{saturated}\n{stems}allow_residual = true\n")).unwrap();
    assert!(allowed.outputs[1].allow_residual);
    assert_rejected(
        &MINIMAL.replace("format = \"pcm24\"", "format = \"pcm24\"\nallow_residual = true"),
        &["outputs[0].allow_residual", "stems", "line"],
    );
}

#[test]
fn split_channels_with_a_resampled_rate_is_refused() {
    assert_rejected(
        &with_output(
            "path = \"m.wav\"\nkind = \"master\"\nformat = \"pcm24\"\nsample_rate = 44100\nsplit_channels = true",
        ),
        &["outputs[0].split_channels", "sample_rate", "not supported yet"],
    );
}
