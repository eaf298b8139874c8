//! Config files: any text is taken as a valid configuration or refused with an error that
//! names the problem; nothing panics, and what is taken passes validation again.

#![no_main]

use confab_server::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(toml) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(toml) {
        Ok(config) => config.validate().expect("a parsed config is valid"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
