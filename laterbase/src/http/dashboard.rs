//! The dashboard: `GET /ui`, one page with its script and style sheet,
//! compiled into the binary from the files of `ui/` beside this one. They
//! hold no data, name nothing outside the node (no CDN, no web fonts) and
//! need no token: the script reads `/status` as any client does, with the
//! token the page asks for when the node wants one.
//!
//! Each answer carries its content type, an `ETag` of its bytes and
//! `Cache-Control: no-cache`, so that a browser revalidates (a `304` when
//! the binary is the same) and never keeps a page of an older binary.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page's path.
pub(super) const PAGE: &str = "/ui";
/// The script's path.
pub(super) const SCRIPT: &str = "/ui/app.js";
/// The style sheet's path.
pub(super) const STYLE: &str = "/ui/app.css";

/// What the page may load and connect to: this node alone, no inline
/// script or style, and no framing by another site.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One file of the dashboard.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
}

const PAGE_ASSET: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("ui/index.html"),
};

const SCRIPT_ASSET: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("ui/app.js"),
};

const STYLE_ASSET: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    bytes: include_bytes!("ui/app.css"),
};

/// `GET /ui`.
pub(super) async fn page(headers: HeaderMap) -> Response {
    serve(&PAGE_ASSET, &headers)
}

/// `GET /ui/app.js`.
pub(super) async fn script(headers: HeaderMap) -> Response {
    serve(&SCRIPT_ASSET, &headers)
}

/// `GET /ui/app.css`.
pub(super) async fn style(headers: HeaderMap) -> Response {
    serve(&STYLE_ASSET, &headers)
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = format!(
        "\"{}-{:016x}\"",
        env!("CARGO_PKG_VERSION"),
        xxhash_rust::xxh3::xxh3_64(asset.bytes)
    );
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|given| given.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.bytes.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_assets_and_nothing_outside_the_node() {
        let page = std::str::from_utf8(PAGE_ASSET.bytes).expect("UTF-8");
        assert!(page.contains(&format!("src=\"{SCRIPT}\"")), "{page}");
        assert!(page.contains(&format!("href=\"{STYLE}\"")), "{page}");
        for asset in [&PAGE_ASSET, &SCRIPT_ASSET, &STYLE_ASSET] {
            let text = std::str::from_utf8(asset.bytes).expect("UTF-8");
            for outside in ["http://", "https://", "//fonts", "@import", "url("] {
                // The one namespace URI an SVG element is made with names
                // no place to load.
                let loads = text
                    .match_indices(outside)
                    .any(|(at, _)| !text[at..].starts_with("http://www.w3.org/2000/svg"));
                assert!(!loads, "{} names {outside}", asset.content_type);
            }
        }
    }
}
