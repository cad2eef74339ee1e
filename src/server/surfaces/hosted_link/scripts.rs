//! The scripts the hosted flow serves: `/link.js` (the `FlexpaLink` global integrators load, and its
//! TypeScript declarations), `/link/v1/link-element.js` (the `<flexpa-link>` element over it, with its
//! declarations), `/link/v1/link-react.js` (the `useFlexpaLink` React hook over it, an ES module, with its
//! declarations) and `/link/frame.js` (the glue every hosted screen loads).

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};

const LINK_JS: &str = include_str!("../../../../public/link.js");
const LINK_DTS: &str = include_str!("../../../../public/link.d.ts");
const FRAME_JS: &str = include_str!("frame.js");
const ELEMENT_JS: &str = include_str!("../../../../public/link-element.js");
const ELEMENT_DTS: &str = include_str!("../../../../public/link-element.d.ts");
const REACT_JS: &str = include_str!("../../../../public/link-react.js");
const REACT_DTS: &str = include_str!("../../../../public/link-react.d.ts");

fn script(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
            // Loaded cross-origin by integrators' pages.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
            (header::HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("cross-origin")),
        ],
        body,
    )
        .into_response()
}

/// `GET /link.js`, `/link/v1/link.js`.
pub async fn link_js() -> Response {
    script(LINK_JS, "text/javascript; charset=utf-8")
}

/// `GET /link.d.ts`, `/link/v1/link.d.ts`.
pub async fn link_dts() -> Response {
    script(LINK_DTS, "application/typescript; charset=utf-8")
}

/// `GET /link/v1/link-element.js`: the `<flexpa-link>` custom element over the `FlexpaLink` global.
pub async fn element_js() -> Response {
    script(ELEMENT_JS, "text/javascript; charset=utf-8")
}

/// `GET /link/v1/link-element.d.ts`.
pub async fn element_dts() -> Response {
    script(ELEMENT_DTS, "application/typescript; charset=utf-8")
}

/// `GET /link/v1/link-react.js`: the `useFlexpaLink` React hook (an ES module importing `react` from the host app)
/// over the `FlexpaLink` global.
pub async fn react_js() -> Response {
    script(REACT_JS, "text/javascript; charset=utf-8")
}

/// `GET /link/v1/link-react.d.ts`.
pub async fn react_dts() -> Response {
    script(REACT_DTS, "application/typescript; charset=utf-8")
}

/// `GET /link/frame.js`.
pub async fn frame_js() -> Response {
    script(FRAME_JS, "text/javascript; charset=utf-8")
}
