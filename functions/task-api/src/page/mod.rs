//! The dashboard page: one HTML page, its script and styles, served as they are (no build
//! step) and without identity; the script reads `GET /dashboard/stats` with the caller's.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Where the page is served; its files are beside it, under `/dashboard/`.
pub const PAGE_PATH: &str = "/dashboard";

/// Only this origin's script, styles and requests; no inline script or style, no frames,
/// no forms posting anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// How the page's callers name themselves in Lambda: a bearer token for the JWT
/// authorizer. The local server answers this path itself with its identity headers.
pub const BEARER_IDENTITY: &str = r#"{"scheme":"bearer"}"#;

/// One file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const ASSETS: [Asset; 4] = [
    Asset {
        path: PAGE_PATH,
        content_type: "text/html; charset=utf-8",
        body: include_str!("index.html"),
    },
    Asset {
        path: "/dashboard/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("app.js"),
    },
    Asset {
        path: "/dashboard/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("app.css"),
    },
    Asset {
        path: "/dashboard/identity.json",
        content_type: "application/json",
        body: BEARER_IDENTITY,
    },
];

/// The file a `GET` (or `HEAD`) of `path` asks for, if any.
pub fn asset(method: &Method, path: &str) -> Option<&'static Asset> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The headers every file of the page is served with.
pub fn headers(content_type: &'static str) -> [(header::HeaderName, &'static str); 6] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Small files, changed with every deploy: always ask again.
        (header::CACHE_CONTROL, "no-cache"),
    ]
}

/// The response serving `asset`.
pub fn response(asset: &Asset) -> Response {
    let mut response = (StatusCode::OK, asset.body).into_response();
    for (name, value) in headers(asset.content_type) {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The page's routes: its files, and how callers name themselves, `identity` (a JSON
/// document: [`BEARER_IDENTITY`] in Lambda).
pub fn router<S: Clone + Send + Sync + 'static>(identity: &'static str) -> Router<S> {
    let mut router = Router::new();
    for asset in &ASSETS {
        let asset = if asset.path.ends_with("identity.json") {
            Asset {
                body: identity,
                ..*asset
            }
        } else {
            *asset
        };
        router = router.route(asset.path, get(move || async move { response(&asset) }));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html() -> &'static str {
        asset(&Method::GET, PAGE_PATH).unwrap().body
    }

    #[test]
    fn when_the_page_or_its_files_are_asked_for_should_serve_them_with_their_types() {
        for (path, content_type) in [
            ("/dashboard", "text/html; charset=utf-8"),
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/app.css", "text/css; charset=utf-8"),
            ("/dashboard/identity.json", "application/json"),
        ] {
            let response = response(asset(&Method::GET, path).unwrap());
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["content-type"], content_type, "{path}");
            assert_eq!(
                response.headers()["content-security-policy"],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
        assert!(asset(&Method::POST, "/dashboard").is_none());
        assert!(asset(&Method::GET, "/dashboard/stats").is_none());
        assert!(asset(&Method::GET, "/dashboard/other.js").is_none());
    }

    #[test]
    fn when_the_policy_is_read_should_allow_this_origin_only_and_nothing_inline() {
        let directives: Vec<&str> = CONTENT_SECURITY_POLICY.split("; ").collect();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(directives.contains(&directive), "{directive}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[test]
    fn when_the_page_is_read_should_hold_no_inline_script_style_or_foreign_source() {
        let html = html();
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(r#"<script src="dashboard/app.js" defer></script>"#));
        assert!(!html.contains("<style"));
        assert!(!html.contains("style="));
        let handlers = html
            .split_whitespace()
            .filter(|word| word.starts_with("on") && word.contains('='));
        assert_eq!(handlers.count(), 0, "no inline event handlers");
        assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("//"));
    }

    #[test]
    fn when_the_script_draws_values_should_never_parse_them_as_markup() {
        let script = asset(&Method::GET, "/dashboard/app.js").unwrap().body;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "{sink}");
        }
        // The token lives for the tab only.
        assert!(script.contains("sessionStorage") && !script.contains("localStorage"));
    }
}
