//! Web Push endpoint URLs, which clients choose and the server then calls: the check never
//! panics, and whatever it accepts is an absolute https URL on port 443 whose host is a
//! name (checked again when resolved) or a public address, and at most 2048 characters.

#![no_main]

use confab_server::push::check_endpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(endpoint) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_endpoint(endpoint, true);
    if check_endpoint(endpoint, false).is_none() {
        assert!(endpoint.len() <= 2048);
        let url = reqwest::Url::parse(endpoint).expect("accepted, so a URL");
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.port_or_known_default(), Some(443));
        match url.host() {
            Some(url::Host::Domain(name)) => assert!(name != "localhost"),
            Some(url::Host::Ipv4(ip)) => assert!(!ip.is_loopback() && !ip.is_private()),
            Some(url::Host::Ipv6(ip)) => assert!(!ip.is_loopback() && !ip.is_unspecified()),
            None => panic!("accepted without a host: {endpoint}"),
        }
    }
});
