//! The HTTP request bodies, decoded as the API's handlers decode them (first byte: which
//! body; the rest: the JSON), then the checks behind them: names come out NFC, trimmed,
//! 1-64 characters and stable under a second check; a checked message body is within the
//! limits. Nothing may panic.

#![no_main]

use confab_proto::{
    AddMemberRequest, Body, ChangePasswordRequest, CreateGroupRequest, DirectRequest, LoginRequest,
    PushSubscriptionRequest, ReadRequest, RenameGroupRequest, SendRequest, SignupRequest,
    UpdateMeRequest,
};
use confab_server::names::Name;
use libfuzzer_sys::fuzz_target;

/// A name the server took: as it will be stored, and a fixed point of the check.
fn check_name(kind: Name, raw: &str) {
    if let Ok(name) = kind.check(raw) {
        let chars = name.chars().count();
        assert!((1..=64).contains(&chars), "{chars} characters: {name:?}");
        assert_eq!(name.trim(), name);
        assert_eq!(
            kind.check(&name).as_deref(),
            Ok(name.as_str()),
            "not stable: {raw:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    match which % 12 {
        0 => {
            if let Ok(r) = serde_json::from_slice::<SignupRequest>(json) {
                if let Some(d) = &r.display_name {
                    check_name(Name::Display, d);
                }
            }
        }
        1 => {
            if let Ok(r) = serde_json::from_slice::<LoginRequest>(json) {
                if let Some(d) = &r.device_name {
                    check_name(Name::Device, d);
                }
            }
        }
        2 => {
            if let Ok(r) = serde_json::from_slice::<UpdateMeRequest>(json) {
                check_name(Name::Display, &r.display_name);
            }
        }
        3 => {
            if let Ok(r) = serde_json::from_slice::<CreateGroupRequest>(json) {
                check_name(Name::Title, &r.title);
            }
        }
        4 => {
            if let Ok(r) = serde_json::from_slice::<RenameGroupRequest>(json) {
                check_name(Name::Title, &r.title);
            }
        }
        5 => {
            if let Ok(r) = serde_json::from_slice::<SendRequest>(json) {
                if let Ok(body) = Body::new(r.body) {
                    let chars = body.as_str().chars().count();
                    assert!((1..=99_999).contains(&chars) && !body.as_str().contains('\0'));
                }
            }
        }
        6 => drop(serde_json::from_slice::<ReadRequest>(json)),
        7 => drop(serde_json::from_slice::<DirectRequest>(json)),
        8 => drop(serde_json::from_slice::<AddMemberRequest>(json)),
        9 => drop(serde_json::from_slice::<ChangePasswordRequest>(json)),
        10 => drop(serde_json::from_slice::<PushSubscriptionRequest>(json)),
        _ => {
            // Any string, straight to the name check.
            if let Ok(text) = std::str::from_utf8(json) {
                check_name(Name::Display, text);
            }
        }
    }
});
