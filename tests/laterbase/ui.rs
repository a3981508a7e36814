//! Every mistake `#[view]` catches is a compile error that points at its
//! token: the cases and their expected messages are in `tests/ui/`.

#[test]
fn view_mistakes_are_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("../tests/ui/*.rs");
}
