//! docs/openapi.yaml describes exactly the routes the server has.

use crate::harness::TestServer;
use std::collections::BTreeSet;

fn documented() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml exists");
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).expect("docs/openapi.yaml is YAML");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if ["get", "post", "patch", "put", "delete"].contains(&method) {
                out.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    out
}

/// The routes as written in the router: each `.route("PATH", get(..).post(..))`, however
/// rustfmt wraps it.
fn routed() -> BTreeSet<(String, String)> {
    let source: String = include_str!("../../src/api/mod.rs")
        .split_whitespace()
        .collect();
    let mut out = BTreeSet::new();
    for call in source.split(".route(\"").skip(1) {
        let (path, rest) = call.split_once('"').unwrap();
        // The handlers end where the next builder call starts.
        let handlers = rest.split(")).").next().unwrap();
        for method in ["get", "post", "patch", "put", "delete"] {
            if handlers.contains(&format!(",{method}("))
                || handlers.contains(&format!(").{method}("))
            {
                out.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn openapi_matches_the_router() {
    let documented = documented();
    let routed = routed();
    assert!(routed.len() > 20, "parsed the router: {routed:?}");
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not documented: {missing:?}; documented but not routed: {extra:?}"
    );

    // And each documented route really answers (anything but the fallback's "no such route").
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for (method, path) in &documented {
        let url = format!(
            "{}{}",
            server.url,
            path.replace("{id}", "1")
                .replace("{user_id}", "1")
                .replace("{seq}", "1")
        );
        let res = http
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert!(
            status != 405 && !body.contains("no such route"),
            "{method} {path}: {status} {body}"
        );
    }
}
