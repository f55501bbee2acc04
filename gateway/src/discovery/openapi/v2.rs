//! A minimal OpenAPI v2: a Swagger 2.0 document with no definitions, in JSON and in the protobuf kubectl asks for.
//!
//! kubectl falls back to this document for what the v3 documents cannot vouch for (a `kind: List`, a kind the
//! server does not serve); with no definitions, it validates nothing itself and lets the server decide, which
//! refuses unknown kinds and fields.

use serde_json::{json, Value};

/// Content type of the protobuf OpenAPI v2 answer. kubectl asks for
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but Go's MIME parser rejects that `@` in a
/// response, so kube-apiserver (kube-openapi) answers `application/octet-stream`, as here.
pub const V2_PROTOBUF: &str = "application/octet-stream";

/// `/openapi/v2` as JSON.
pub fn v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Navarch", "version": "v1.32.0"}, "paths": {}})
}

/// `/openapi/v2` as protobuf (gnostic's `openapi_v2.Document`: `swagger` = 1, `info` = 2 with `title` = 1 and
/// `version` = 2, `paths` = 8), the encoding kubectl requires.
pub fn v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push(number << 3 | 2); // length-delimited
        let mut len = bytes.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Navarch");
    field(&mut info, 2, b"v1.32.0");
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    field(&mut doc, 8, &[]);
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn v2_protobuf_is_a_gnostic_document() {
        let doc = super::v2_protobuf();
        assert_eq!(&doc[..5], b"\x0a\x032.0");
        assert_eq!(doc[5], 0x12);
        assert_eq!(doc[6] as usize, 2 + 7 + 2 + 7);
        assert_eq!(&doc[doc.len() - 2..], b"\x42\x00");
    }
}
