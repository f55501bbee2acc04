//! Replays the fuzz corpus (`gateway/fuzz/corpus/api_input/`, kept minimized by `cargo fuzz cmin`) through the same
//! entry point the fuzz target uses: every input that ever found a panic stays a regression test.

#[test]
fn every_corpus_input_is_answered_without_a_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/api_input");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("the fuzz corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| navarch_gateway::fuzzing::exercise(&data));
        assert!(outcome.is_ok(), "{} panics", path.display());
        count += 1;
    }
    assert!(count >= 20, "the corpus has only {count} inputs");
}
