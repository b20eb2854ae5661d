//! (d) Session-string import of every supported format (Telethon, Pyrogram,
//! GramJS, and auto-detection).
//!
//! The first byte picks how the rest becomes a string: as text, or as the
//! decoded bytes of one format (base64-encoded here, with its prefix), so
//! that the fuzzer reaches the layout parsers directly. Checks: no panic;
//! auto-detection agrees with the format-specific import; an imported
//! session stores (encode/decode) unchanged; export then import is a
//! fixpoint.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use peerlog::{Session, SessionStringFormat, detect_session_string};

type Import = fn(&str) -> Result<Session, peerlog::SessionStringError>;
type Export = fn(&Session) -> Result<String, peerlog::SessionStringError>;

fn check(format: SessionStringFormat, import: Import, export: Export, s: &str) {
    let Ok(sess) = import(s) else { return };
    assert_eq!(
        Session::decode(&sess.encode()),
        Ok(sess.clone()),
        "{format}: stores"
    );
    if let Ok(out) = export(&sess) {
        let back = import(&out).unwrap_or_else(|e| panic!("{format}: own export rejected: {e}"));
        assert_eq!(back, sess, "{format}: export/import is not a fixpoint");
        assert_eq!(
            export(&back).as_deref(),
            Ok(out.as_str()),
            "{format}: export is stable"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let s = match mode % 5 {
        0 => format!("1{}", URL_SAFE.encode(rest)),
        1 => URL_SAFE_NO_PAD.encode(rest),
        2 => format!("1{}", STANDARD.encode(rest)),
        _ => String::from_utf8_lossy(rest).into_owned(),
    };
    let formats: [(SessionStringFormat, Import, Export); 3] = [
        (
            SessionStringFormat::Telethon,
            Session::from_telethon_string,
            Session::to_telethon_string,
        ),
        (
            SessionStringFormat::Pyrogram,
            Session::from_pyrogram_string,
            Session::to_pyrogram_string,
        ),
        (
            SessionStringFormat::GramJs,
            Session::from_gramjs_string,
            Session::to_gramjs_string,
        ),
    ];
    for (f, import, export) in formats {
        check(f, import, export, &s);
    }
    let detected = detect_session_string(&s);
    match Session::parse_session_string(&s) {
        Ok((f, sess)) => {
            assert_eq!(detected, Ok(f));
            let (_, import, _) = formats.iter().find(|(g, _, _)| *g == f).unwrap();
            assert_eq!(import(&s), Ok(sess.clone()), "auto-detect agrees with {f}");
            assert_eq!(Session::from_session_string(&s), Ok(sess));
        }
        Err(e) => {
            if let Ok(f) = detected {
                let (_, import, _) = formats.iter().find(|(g, _, _)| *g == f).unwrap();
                assert_eq!(import(&s), Err(e), "auto-detect agrees with {f}");
            }
            assert!(Session::from_session_string(&s).is_err());
        }
    }
});
