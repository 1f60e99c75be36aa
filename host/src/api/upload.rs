//! [`PolicyUpload`]: the body of `PUT /api/v1/policies/{name}` (contract
//! §6.3), read under the upload's own limits rather than the 1 MiB cap of
//! the other routes (§1.6) or axum's default body limit.
//!
//! - `Content-Type: application/wasm` (parameters and case ignored): the
//!   whole body is the module; no manifest.
//! - `Content-Type: multipart/form-data; boundary=…`: part `module`
//!   (required, once) and part `manifest` (optional, once; UTF-8 TOML of at
//!   most [`MAX_MANIFEST_BYTES`]). Parts with other names, or none, are
//!   skipped; their bytes still count toward [`UPLOAD_LIMIT`].
//!
//! The body is read as it arrives, never buffered past [`UPLOAD_LIMIT`].
//! Checks, in this order, refusing at the first problem (in body order):
//! 1. Any other or no `Content-Type` → 415 `UNSUPPORTED_MEDIA_TYPE`, unread.
//! 2. A declared `Content-Length` over the cap (raw: [`MODULE_LIMIT`], the
//!    body being the module; multipart: [`UPLOAD_LIMIT`]) → 413, unread.
//! 3. A module past [`MODULE_LIMIT`], or a multipart body past
//!    [`UPLOAD_LIMIT`] → 413 as soon as it passes, with `limit_bytes`
//!    [`MODULE_LIMIT`] either way.
//! 4. Multipart framing (no boundary, broken or truncated body), a second
//!    `module` or `manifest` part, no `module` part → 400 `BAD_REQUEST`
//!    "Invalid multipart body: …".
//! 5. A manifest over [`MAX_MANIFEST_BYTES`] or not UTF-8 → 400
//!    `INVALID_POLICY` "invalid manifest: …", worded as for one on disk.
//!
//! The module's content and the manifest's TOML are not checked here: the
//! install does that for uploads and the directory alike.

use std::fmt;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use bytes::BytesMut;
use http_body_util::{BodyExt, Limited};

use super::ApiError;
use super::extract::{declared_length, read_limited, unreadable};
use crate::manifest::MAX_MANIFEST_BYTES;

/// Largest module accepted: exactly this many bytes is fine.
pub const MODULE_LIMIT: usize = 16 * 1024 * 1024;

/// Largest multipart body read: a full-size module, a full-size manifest
/// and room for the framing. A larger declared length is refused unread.
pub const UPLOAD_LIMIT: usize = MODULE_LIMIT + 128 * 1024;

const ACCEPTED_TYPES: &str = "Content-Type must be application/wasm (the module) \
     or multipart/form-data (parts `module` and optional `manifest`)";

/// How the upload was sent. A raw module has no manifest: the install then
/// uses the default manifest and removes an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// `application/wasm`: the body is the module.
    Raw,
    /// `multipart/form-data`: parts `module` and optional `manifest`.
    Multipart,
}

/// A policy upload: the module bytes and the optional manifest text.
pub struct PolicyUpload {
    /// The module, at most [`MODULE_LIMIT`] bytes; not validated.
    pub module: Bytes,
    /// The `manifest` part: UTF-8, at most [`MAX_MANIFEST_BYTES`], not
    /// parsed. Always `None` for [`UploadKind::Raw`].
    pub manifest: Option<String>,
    /// How it was sent.
    pub kind: UploadKind,
}

/// Sizes only: a module is up to 16 MiB of binary.
impl fmt::Debug for PolicyUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyUpload")
            .field("module_bytes", &self.module.len())
            .field("manifest_bytes", &self.manifest.as_ref().map(String::len))
            .field("kind", &self.kind)
            .finish()
    }
}

impl<S: Send + Sync> FromRequest<S> for PolicyUpload {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let kind = upload_kind(request.headers())?;
        let cap = match kind {
            UploadKind::Raw => MODULE_LIMIT,
            UploadKind::Multipart => UPLOAD_LIMIT,
        };
        if declared_length(request.headers()).is_some_and(|length| length > cap as u64) {
            return Err(too_large());
        }
        match kind {
            UploadKind::Raw => Ok(PolicyUpload {
                module: read_limited(request.into_body(), MODULE_LIMIT, too_large).await?,
                manifest: None,
                kind,
            }),
            UploadKind::Multipart => {
                let boundary = boundary(request.headers())?;
                read_multipart(request.into_body(), boundary).await
            }
        }
    }
}

fn too_large() -> ApiError {
    ApiError::ModuleTooLarge {
        limit: MODULE_LIMIT,
    }
}

fn invalid_multipart(detail: impl fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Invalid multipart body: {detail}"))
}

/// The `Content-Type`; `""` if absent or not visible ASCII.
fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// The kind the `Content-Type` names; its parameters and case are ignored.
fn upload_kind(headers: &HeaderMap) -> Result<UploadKind, ApiError> {
    let media_type = content_type(headers)
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if media_type.eq_ignore_ascii_case("application/wasm") {
        Ok(UploadKind::Raw)
    } else if media_type.eq_ignore_ascii_case("multipart/form-data") {
        Ok(UploadKind::Multipart)
    } else {
        Err(ApiError::UnsupportedMediaType(ACCEPTED_TYPES))
    }
}

/// The multipart boundary; [`upload_kind`] has checked the media type.
fn boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    multer::parse_boundary(content_type(headers)).map_err(|error| match error {
        multer::Error::NoBoundary => {
            invalid_multipart("the Content-Type has no `boundary` parameter")
        }
        other => invalid_multipart(format!("bad Content-Type: {other}")),
    })
}

/// Streams the parts, keeping `module` and `manifest`.
async fn read_multipart(body: Body, boundary: String) -> Result<PolicyUpload, ApiError> {
    let framing = format!(
        "each part must start with a `--{boundary}` line and the body end with `--{boundary}--`"
    );
    let malformed = |error: multer::Error| match error {
        multer::Error::StreamReadFailed(error) => unreadable(&*error, too_large),
        multer::Error::IncompleteStream | multer::Error::IncompleteFieldData { .. } => {
            invalid_multipart(format!("{error} ({framing})"))
        }
        other => invalid_multipart(other),
    };
    let stream = Limited::new(body, UPLOAD_LIMIT).into_data_stream();
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut module = None;
    let mut manifest = None;
    while let Some(mut part) = parts.next_field().await.map_err(malformed)? {
        match part.name() {
            Some("module") => {
                only_once(&module, "module")?;
                let bytes = read_part(&mut part, MODULE_LIMIT)
                    .await
                    .map_err(malformed)?
                    .ok_or_else(too_large)?;
                module = Some(bytes);
            }
            Some("manifest") => {
                only_once(&manifest, "manifest")?;
                let bytes = read_part(&mut part, MAX_MANIFEST_BYTES)
                    .await
                    .map_err(malformed)?
                    .ok_or_else(|| {
                        invalid_manifest(format!("larger than {MAX_MANIFEST_BYTES} bytes"))
                    })?;
                let text = String::from_utf8(bytes.into()).map_err(|error| {
                    invalid_manifest(format!(
                        "not UTF-8 (invalid byte at offset {})",
                        error.utf8_error().valid_up_to()
                    ))
                })?;
                manifest = Some(text);
            }
            // Skipped: `next_field` reads past what is left of it.
            _ => {}
        }
    }
    let module = module.ok_or_else(|| invalid_multipart("no `module` part"))?;
    Ok(PolicyUpload {
        module,
        manifest,
        kind: UploadKind::Multipart,
    })
}

/// Refuses a second part named `name`, before reading it.
fn only_once<T>(seen: &Option<T>, name: &str) -> Result<(), ApiError> {
    match seen {
        Some(_) => Err(invalid_multipart(format!("more than one `{name}` part"))),
        None => Ok(()),
    }
}

fn invalid_manifest(detail: String) -> ApiError {
    ApiError::InvalidPolicy(format!("invalid manifest: {detail}"))
}

/// A part's bytes, or `None` as soon as they pass `limit`.
async fn read_part(
    part: &mut multer::Field<'_>,
    limit: usize,
) -> Result<Option<Bytes>, multer::Error> {
    let mut bytes = BytesMut::new();
    while let Some(chunk) = part.chunk().await? {
        if bytes.len() + chunk.len() > limit {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes.freeze()))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use axum::http::header::CONTENT_LENGTH;
    use axum::response::IntoResponse;
    use hyper::body::Frame;
    use serde_json::{Value, json};

    use super::*;

    const BOUNDARY: &str = "XyZ-boundary";
    const CHUNK: usize = 64 * 1024;

    /// A body sent in chunks with no declared length, each arriving after
    /// a wait as from a socket, counting the bytes the extractor pulled.
    struct Chunked {
        chunks: VecDeque<Bytes>,
        read: Arc<AtomicUsize>,
        waited: bool,
    }

    impl axum::body::HttpBody for Chunked {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if !self.waited {
                self.waited = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.waited = false;
            let chunk = self.chunks.pop_front();
            if let Some(chunk) = &chunk {
                self.read.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            Poll::Ready(chunk.map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    /// `data` as a chunked body, and the count of bytes read from it.
    fn chunked(data: &[u8]) -> (Body, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let chunks = data.chunks(CHUNK).map(Bytes::copy_from_slice).collect();
        let body = Chunked {
            chunks,
            read: read.clone(),
            waited: false,
        };
        (Body::new(body), read)
    }

    fn request(content_type: Option<&str>, body: Body) -> Request {
        let mut builder = Request::builder().method("PUT").uri("/api/v1/policies/p");
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        builder.body(body).expect("a valid request")
    }

    fn multipart_type() -> String {
        format!("multipart/form-data; boundary={BOUNDARY}")
    }

    /// `(name, content)` pairs.
    type Parts<'a> = &'a [(&'a str, &'a [u8])];

    /// A multipart body of `parts`.
    fn multipart(parts: Parts<'_>) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, content) in parts {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    async fn extract(request: Request) -> Result<PolicyUpload, ApiError> {
        PolicyUpload::from_request(request, &()).await
    }

    async fn upload(content_type: Option<&str>, body: impl Into<Body>) -> PolicyUpload {
        extract(request(content_type, body.into()))
            .await
            .expect("the upload is accepted")
    }

    /// The status and JSON body a refused request gets.
    async fn refusal(request: Request) -> (u16, Value) {
        let error = extract(request).await.expect_err("the upload is refused");
        let response = error.into_response();
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a readable body")
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).expect("a JSON error body"),
        )
    }

    async fn refused(content_type: Option<&str>, body: impl Into<Body>) -> (u16, Value) {
        refusal(request(content_type, body.into())).await
    }

    fn error_body(code: &str, message: &str) -> Value {
        json!({"error": code.to_ascii_lowercase(), "code": code, "message": message})
    }

    fn too_large_body() -> Value {
        json!({"error": "request_too_large", "code": "REQUEST_TOO_LARGE",
               "message": "module exceeds 16777216 bytes; nothing was changed",
               "limit_bytes": 16_777_216})
    }

    #[tokio::test]
    async fn a_raw_module_is_the_whole_body() {
        let upload = upload(Some("application/wasm"), &b"\0asm\x0d\0\x01\0"[..]).await;
        assert_eq!(&upload.module[..], b"\0asm\x0d\0\x01\0");
        assert_eq!(upload.manifest, None);
        assert_eq!(upload.kind, UploadKind::Raw);
    }

    #[tokio::test]
    async fn the_media_type_ignores_case_and_parameters() {
        for content_type in [
            "Application/WASM",
            "application/wasm; charset=binary",
            " application/wasm ;x=y",
        ] {
            let upload = upload(Some(content_type), "module").await;
            assert_eq!(&upload.module[..], b"module", "{content_type}");
            assert_eq!(upload.kind, UploadKind::Raw, "{content_type}");
        }
        let content_type = format!("Multipart/Form-Data; charset=utf-8; boundary=\"{BOUNDARY}\"");
        let upload = upload(Some(&content_type), multipart(&[("module", b"m")])).await;
        assert_eq!(upload.kind, UploadKind::Multipart);
    }

    #[tokio::test]
    async fn multipart_carries_the_module_and_the_manifest() {
        let body = multipart(&[
            ("module", b"\0asm\r\n--not-a-boundary\r\n\xff"),
            ("manifest", "priority = 5\n# é\n".as_bytes()),
        ]);
        let upload = upload(Some(&multipart_type()), body).await;
        assert_eq!(&upload.module[..], b"\0asm\r\n--not-a-boundary\r\n\xff");
        assert_eq!(upload.manifest.as_deref(), Some("priority = 5\n# é\n"));
        assert_eq!(upload.kind, UploadKind::Multipart);
    }

    #[tokio::test]
    async fn the_manifest_part_is_optional_and_other_parts_are_skipped() {
        let body = multipart(&[("note", b"hello"), ("module", b"m"), ("extra", b"x")]);
        let upload = upload(Some(&multipart_type()), body).await;
        assert_eq!(&upload.module[..], b"m");
        assert_eq!(upload.manifest, None);
        assert_eq!(upload.kind, UploadKind::Multipart);
    }

    #[tokio::test]
    async fn multipart_needs_exactly_one_module_part() {
        let cases: [(Parts<'_>, &str); 3] = [
            (
                &[("manifest", b"")],
                "Invalid multipart body: no `module` part",
            ),
            (
                &[("module", b"a"), ("module", b"b")],
                "Invalid multipart body: more than one `module` part",
            ),
            (
                &[("module", b"a"), ("manifest", b""), ("manifest", b"")],
                "Invalid multipart body: more than one `manifest` part",
            ),
        ];
        for (parts, message) in cases {
            let refusal = refused(Some(&multipart_type()), multipart(parts)).await;
            assert_eq!(refusal, (400, error_body("BAD_REQUEST", message)));
        }
    }

    #[tokio::test]
    async fn a_manifest_over_64_kib_is_an_invalid_policy() {
        let largest = vec![b'#'; MAX_MANIFEST_BYTES];
        let body = multipart(&[("module", b"m"), ("manifest", &largest)]);
        let upload = upload(Some(&multipart_type()), body).await;
        assert_eq!(upload.manifest.map(|text| text.len()), Some(65_536));

        let over = vec![b'#'; MAX_MANIFEST_BYTES + 1];
        let body = multipart(&[("module", b"m"), ("manifest", &over)]);
        let refusal = refused(Some(&multipart_type()), body).await;
        let message = "invalid manifest: larger than 65536 bytes";
        assert_eq!(refusal, (400, error_body("INVALID_POLICY", message)));
    }

    #[tokio::test]
    async fn a_manifest_must_be_utf8() {
        let body = multipart(&[("module", b"m"), ("manifest", b"a = 1\xff")]);
        let refusal = refused(Some(&multipart_type()), body).await;
        let message = "invalid manifest: not UTF-8 (invalid byte at offset 5)";
        assert_eq!(refusal, (400, error_body("INVALID_POLICY", message)));
    }

    #[tokio::test]
    async fn a_malformed_multipart_body_is_a_bad_request() {
        let framing = format!(
            "each part must start with a `--{BOUNDARY}` line and the body end with `--{BOUNDARY}--`"
        );
        let incomplete = format!("Invalid multipart body: incomplete multipart stream ({framing})");
        let cut = format!(
            "Invalid multipart body: field \"module\" received with incomplete data ({framing})"
        );
        let mut truncated = multipart(&[("module", b"m")]);
        truncated.truncate(truncated.len() - 10);
        let cases = [
            (
                multipart_type(),
                b"not multipart at all".to_vec(),
                incomplete.clone(),
            ),
            (multipart_type(), truncated, cut),
            (
                "multipart/form-data".to_owned(),
                multipart(&[("module", b"m")]),
                "Invalid multipart body: the Content-Type has no `boundary` parameter".to_owned(),
            ),
        ];
        for (content_type, body, message) in cases {
            let refusal = refused(Some(&content_type), body).await;
            assert_eq!(refusal, (400, error_body("BAD_REQUEST", &message)));
        }
    }

    #[tokio::test]
    async fn other_or_no_content_types_are_unsupported() {
        let message = "Content-Type must be application/wasm (the module) \
             or multipart/form-data (parts `module` and optional `manifest`)";
        for content_type in [
            Some("text/plain"),
            Some("application/octet-stream"),
            Some("application/wasmx"),
            Some(""),
            None,
        ] {
            let refusal = refused(content_type, "module").await;
            let expected = (415, error_body("UNSUPPORTED_MEDIA_TYPE", message));
            assert_eq!(refusal, expected, "{content_type:?}");
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_unread() {
        let multipart_type = multipart_type();
        let cases = [
            ("application/wasm", MODULE_LIMIT + 1),
            (multipart_type.as_str(), UPLOAD_LIMIT + 1),
        ];
        for (content_type, length) in cases {
            let (body, read) = chunked(&multipart(&[("module", b"m")]));
            let mut request = request(Some(content_type), body);
            request.headers_mut().insert(
                CONTENT_LENGTH,
                length.to_string().parse().expect("a header"),
            );
            assert_eq!(refusal(request).await, (413, too_large_body()));
            assert_eq!(read.load(Ordering::SeqCst), 0, "{content_type}");
        }
    }

    #[tokio::test]
    async fn a_raw_module_of_exactly_16_mib_is_accepted() {
        let module = vec![7; MODULE_LIMIT];
        let (body, _) = chunked(&module);
        let upload = upload(Some("application/wasm"), body).await;
        assert_eq!(upload.module.len(), 16_777_216);
    }

    #[tokio::test]
    async fn a_chunked_raw_module_is_refused_once_past_16_mib() {
        let (body, read) = chunked(&vec![7; MODULE_LIMIT + 1 + 4 * CHUNK]);
        let refusal = refusal(request(Some("application/wasm"), body)).await;
        assert_eq!(refusal, (413, too_large_body()));
        assert!(read.load(Ordering::SeqCst) <= MODULE_LIMIT + CHUNK);
    }

    #[tokio::test]
    async fn a_multipart_module_part_is_refused_once_past_16_mib() {
        let module = vec![7; MODULE_LIMIT];
        let body = multipart(&[("module", &module), ("manifest", b"")]);
        let upload = upload(Some(&multipart_type()), body).await;
        assert_eq!(upload.module.len(), 16_777_216);

        // Within the body's cap: the module's own limit refuses it, as soon
        // as the module passes it (a part's headers and a chunk later).
        let module = vec![7; MODULE_LIMIT + 1];
        let tail = vec![0; UPLOAD_LIMIT - MODULE_LIMIT - 4096];
        let body = multipart(&[("module", &module), ("tail", &tail)]);
        assert!(body.len() < UPLOAD_LIMIT);
        let (body, read) = chunked(&body);
        let refusal = refusal(request(Some(&multipart_type()), body)).await;
        assert_eq!(refusal, (413, too_large_body()));
        assert!(read.load(Ordering::SeqCst) <= MODULE_LIMIT + CHUNK + 1024);
    }

    #[tokio::test]
    async fn a_multipart_body_is_refused_once_past_its_cap() {
        let filler = vec![7; UPLOAD_LIMIT + 4 * CHUNK];
        let (body, read) = chunked(&multipart(&[("filler", &filler), ("module", b"m")]));
        let refusal = refusal(request(Some(&multipart_type()), body)).await;
        assert_eq!(refusal, (413, too_large_body()));
        assert!(read.load(Ordering::SeqCst) <= UPLOAD_LIMIT + CHUNK);
    }
}
