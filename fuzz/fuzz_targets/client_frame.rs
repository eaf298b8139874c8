//! The WebSocket frame decoder, as the gateway's reader uses it: any text either decodes to
//! a `ClientFrame` or is refused, without a panic; a decoded frame encodes back to text that
//! decodes to the same frame; a send's body and id go through the same checks as the server's.

#![no_main]

use confab_proto::limits::valid_client_msg_id;
use confab_proto::{Body, ClientFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
        return;
    };
    let again = serde_json::to_string(&frame).expect("a decoded frame encodes");
    let back: ClientFrame = serde_json::from_str(&again).expect("an encoded frame decodes");
    assert_eq!(frame, back);
    if let ClientFrame::Send {
        client_msg_id,
        body,
        ..
    } = frame
    {
        let _ = valid_client_msg_id(&client_msg_id);
        if let Ok(body) = Body::new(body.clone()) {
            let chars = body.as_str().chars().count();
            assert!((1..=99_999).contains(&chars) && !body.as_str().contains('\0'));
        }
    }
});
