use super::*;

/// A frame with `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("small");
    let mut out = length.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header block as grpc-go sends one: `:method POST` (indexed), `:scheme http` (indexed), `:path` (literal with
/// indexed name), then `:authority` with `value` (literal with incremental indexing, static name index 1; `huffman`
/// sets the H bit), then `te: trailers` (literal with a literal name).
fn block(value: &[u8], huffman: bool) -> Vec<u8> {
    let mut out = vec![0x83, 0x86, 0x44, 22];
    out.extend_from_slice(b"/etcdserverpb.KV/Range");
    out.push(0x41);
    out.push(u8::try_from(value.len()).expect("short") | if huffman { 0x80 } else { 0 });
    out.extend_from_slice(value);
    out.extend_from_slice(&[0x00, 2, b't', b'e', 8]);
    out.extend_from_slice(b"trailers");
    out
}

fn run(input: &[u8], chunk: usize) -> Vec<u8> {
    let mut rewriter = Rewriter::default();
    let (mut pending, mut out) = (BytesMut::new(), BytesMut::new());
    for piece in input.chunks(chunk.max(1)) {
        pending.extend_from_slice(piece);
        rewriter.feed(&mut pending, &mut out, false);
    }
    rewriter.feed(&mut pending, &mut out, true);
    out.to_vec()
}

#[test]
fn the_authority_is_replaced_and_everything_else_kept() {
    let settings = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let data = frame(0x0, 0x1, 1, b"\0\0\0\0\x05hello");
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(&settings);
    input.extend_from_slice(&frame(
        HEADERS,
        0x4,
        1,
        &block(b"http://127.0.0.1:2379", false),
    ));
    input.extend_from_slice(&data);
    let mut expected = PREFACE.to_vec();
    expected.extend_from_slice(&settings);
    expected.extend_from_slice(&frame(HEADERS, 0x4, 1, &block(b"x", false)));
    expected.extend_from_slice(&data);
    // Whole, or a byte at a time: the same bytes.
    for chunk in [input.len(), 7, 1] {
        assert_eq!(run(&input, chunk), expected, "chunk {chunk}");
    }
}

#[test]
fn huffman_values_padding_and_priority_are_handled() {
    let coded = [0x08, 0x9d, 0x5c, 0x0b, 0x81, 0x70, 0xdc, 0x79, 0xe7, 0x9f];
    let mut payload = vec![3]; // pad length
    payload.extend_from_slice(&[0, 0, 0, 0, 16]); // priority
    payload.extend_from_slice(&block(&coded, true));
    payload.extend_from_slice(&[0, 0, 0]);
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(&frame(HEADERS, PADDED | PRIORITY | 0x4, 3, &payload));
    let mut expected_payload = vec![3, 0, 0, 0, 0, 16];
    expected_payload.extend_from_slice(&block(b"x", false));
    expected_payload.extend_from_slice(&[0, 0, 0]);
    let mut expected = PREFACE.to_vec();
    expected.extend_from_slice(&frame(
        HEADERS,
        PADDED | PRIORITY | 0x4,
        3,
        &expected_payload,
    ));
    assert_eq!(run(&input, 5), expected);
}

#[test]
fn what_does_not_parse_passes_through() {
    for input in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nXX".to_vec(),
        Vec::new(),
        {
            // A header block cut short, and a HEADERS frame without an authority.
            let mut input = PREFACE.to_vec();
            input.extend_from_slice(&frame(HEADERS, 0, 1, &[0x41, 0x7f]));
            input.extend_from_slice(&frame(HEADERS, 0, 3, &[0x83, 0x86]));
            input
        },
    ] {
        assert_eq!(run(&input, 3), input);
    }
    // An unfinished frame at the end of the connection is handed over as it is.
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(&frame(HEADERS, 0, 1, &block(b"a:1", false))[..12]);
    assert_eq!(run(&input, 4), input);
}

#[test]
fn hpack_integers_and_strings() {
    assert_eq!(integer(&[0x0a], 0, 5), Some((10, 1)));
    // 1337 with a 5-bit prefix (RFC 7541 C.1.2).
    assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 0, 5), Some((1337, 3)));
    assert_eq!(integer(&[0x1f, 0x9a], 0, 5), None);
    let mut endless = vec![0x1f];
    endless.extend_from_slice(&[0xff; 11]);
    assert_eq!(integer(&endless, 0, 5), None);
    assert_eq!(
        string(&[0x03, b'a', b'b', b'c', 9], 0),
        Some((&b"abc"[..], 4))
    );
    assert_eq!(string(&[0x05, b'a'], 0), None);
}
