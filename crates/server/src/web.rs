//! The web client: the static files of `web/app` (HTML, CSS, ES modules, manifest, service
//! worker, icons), compiled into the binary so `confab serve` serves a chat app at `/` with
//! no Node and no build step. Only GET and HEAD of exactly those paths are routed here; every
//! other path falls through to the API's JSON `404`, so `/v1` keeps its error contract.
//!
//! `include_dir!` expands to one `include_bytes!` per file, so cargo rebuilds when a file
//! changes; a file *added* to `web/app` is picked up on the next change to this crate.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, File, include_dir};
use sha2::{Digest, Sha256};

static APP: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web/app");

/// Scripts, styles, images, sockets and workers come from this origin only; no inline script
/// or style runs, so a message body that slipped into the DOM as markup could do nothing.
/// `connect-src 'self'` also covers `ws:`/`wss:` to this host (CSP Level 3).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file, ready to answer.
#[derive(Clone)]
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(file: &'static File<'static>) -> Self {
        let digest = Sha256::digest(file.contents());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Self {
            body: file.contents(),
            content_type: content_type(file.path().extension().and_then(|e| e.to_str())),
            etag,
        }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .any(|t| t.trim() == "*" || t.trim() == self.etag)
            });
        let mut answer = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut ok = self.body.into_response();
            ok.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            ok
        };
        let headers = answer.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        // File names carry no content hash, so every file (index.html and sw.js above all)
        // is revalidated on each use; an unchanged one costs a 304. The service worker keeps
        // the copies that open the app offline.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        answer
    }
}

fn content_type(extension: Option<&str>) -> &'static str {
    match extension {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Every file of `dir`, recursively, dotfiles left out.
fn files(dir: &'static Dir<'static>, out: &mut Vec<&'static File<'static>>) {
    for file in dir.files() {
        let hidden = file
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if !hidden {
            out.push(file);
        }
    }
    for sub in dir.dirs() {
        files(sub, out);
    }
}

/// A GET route per embedded file (`/app.css`, `/js/main.js`, ...), and `/` for `index.html`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut all = Vec::new();
    files(&APP, &mut all);
    let mut router = Router::new();
    for file in all {
        let Some(path) = file.path().to_str() else {
            continue;
        };
        let asset = Asset::new(file);
        let handler = move |headers: HeaderMap| {
            let asset = asset.clone();
            async move { asset.respond(&headers) }
        };
        if path == "index.html" {
            router = router.route("/", get(handler.clone()));
        }
        router = router.route(&format!("/{path}"), get(handler));
    }
    router
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    async fn serve() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes::<()>()).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn root_is_the_app_with_its_headers() {
        let base = serve().await;
        let answer = reqwest::get(format!("{base}/")).await.unwrap();
        assert_eq!(answer.status(), 200);
        let h = answer.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["cache-control"], "no-cache");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let body = answer.text().await.unwrap();
        assert!(body.contains("<!doctype html>"), "{body}");
        assert!(!body.contains("<script>"), "no inline script: {body}");
    }

    #[tokio::test]
    async fn files_have_their_types_and_revalidate() {
        let base = serve().await;
        let client = reqwest::Client::new();
        for (path, kind) in [
            ("/sw.js", "text/javascript; charset=utf-8"),
            ("/js/main.js", "text/javascript; charset=utf-8"),
            ("/app.css", "text/css; charset=utf-8"),
            ("/manifest.webmanifest", "application/manifest+json"),
            ("/icons/icon-192.png", "image/png"),
        ] {
            let answer = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(answer.status(), 200, "{path}");
            assert_eq!(answer.headers()["content-type"], kind, "{path}");
            assert_eq!(answer.headers()["cache-control"], "no-cache", "{path}");
            let etag = answer.headers()["etag"].clone();
            let again = client
                .get(format!("{base}{path}"))
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), 304, "{path}");
        }
        let missing = client.get(format!("{base}/nope.js")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
    }
}
