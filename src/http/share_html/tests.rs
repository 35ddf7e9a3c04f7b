use super::*;

#[test]
fn escape_leaves_no_markup() {
    assert_eq!(
        escape("<script>alert('x')</script> & \"q\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
    );
}

#[test]
fn a_qr_code_is_an_svg_document() {
    let svg = qr_svg("http://127.0.0.1:8080/r/6f9619ff-8b86-d011-b42d-00c04fc964ff");
    assert!(
        svg.as_ref()
            .is_some_and(|s| s.contains("<svg") && s.contains("</svg>")),
        "{svg:?}"
    );
}

#[test]
fn places_are_said_as_rounded() {
    assert_eq!(place(48.86, 2.35), "around 48.86° N, 2.35° E");
    assert_eq!(place(-33.87, -70.65), "around 33.87° S, 70.65° W");
}
