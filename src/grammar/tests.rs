use std::sync::Arc;

use serde_json::json;

use super::*;

/// Stop token of the test vocabularies.
const EOT: u32 = 0;

/// A vocabulary of every byte (id = byte + 1, so id 0 is the stop token) and `words`.
fn table(words: &[&str]) -> Arc<TokenTable> {
    let bytes: Vec<[u8; 1]> = (0..=255u8).map(|b| [b]).collect();
    let mut tokens: Vec<(u32, &[u8])> = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32 + 1, &b[..]))
        .collect();
    for (i, w) in words.iter().enumerate() {
        tokens.push((257 + i as u32, w.as_bytes()));
    }
    // One special token past the words: never allowed.
    let vocab = 258 + words.len();
    Arc::new(TokenTable::from_tokens(vocab, tokens, vec![EOT]))
}

fn matcher(gbnf: &str) -> GrammarMatcher {
    GrammarMatcher::new(Arc::new(Grammar::parse(gbnf).unwrap()), table(&[]))
}

/// Whether `grammar` matches exactly `text` (fed byte by byte).
fn matches(m: &mut GrammarMatcher, text: &str) -> bool {
    m.reset();
    text.bytes().all(|b| m.accept(u32::from(b) + 1).is_ok()) && m.is_complete()
}

fn check(gbnf: &str, good: &[&str], bad: &[&str]) {
    let mut m = matcher(gbnf);
    for t in good {
        assert!(matches(&mut m, t), "{gbnf}\nshould match {t:?}");
    }
    for t in bad {
        assert!(!matches(&mut m, t), "{gbnf}\nshould not match {t:?}");
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/grammars/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_llama_cpp_grammar_parses() {
    // The fixtures, and all of llama.cpp's grammars/ when LLAMA_CPP_GRAMMARS names it.
    let mut dirs = vec![format!("{}/tests/fixtures/grammars", env!("CARGO_MANIFEST_DIR"))];
    dirs.extend(std::env::var("LLAMA_CPP_GRAMMARS"));
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "gbnf") {
                let text = std::fs::read_to_string(&path).unwrap();
                if let Err(e) = Grammar::parse(&text) {
                    panic!("{}: {e}", path.display());
                }
            }
        }
    }
}

#[test]
fn llama_cpp_grammars_parse_and_match() {
    check(
        &fixture("json.gbnf"),
        &[
            r#"{}"#,
            r#"{"a": [1, 2.5, -3e12, true, null], "b": {"c": "d\n\u00e9"}}"#,
            "{\n  \"x\": \"é 漢字\"}",
        ],
        &[
            r#"{"a": }"#,
            r#"[1]"#,
            r#"{"a": 01}"#,
            "{\"a\": \"\t\"}",
            r#"{"a" 1}"#,
        ],
    );
    check(
        &fixture("arithmetic.gbnf"),
        &["1+2=3\n", "(a *b)=c\nx=1\n"],
        &["1+2=3", "=3\n", "1++2=3\n"],
    );
    check(
        &fixture("list.gbnf"),
        &["- a\n- bc d\n"],
        &["- \n", "-a\n", "- a\r\n"],
    );
    check(&fixture("chess.gbnf"), &["1. e4 e5\n2. Nf3 Nc6\n"], &["1. e9\n"]);
}

#[test]
fn literals_escapes_classes_and_any() {
    check(
        r#"root ::= "a\tb\n\"\\" "\x41\u00e9\U0001F600" [^"\\] . [a-c0-9\]-]"#,
        &["a\tb\n\"\\Aé😀xy]", "a\tb\n\"\\Aé😀é\n-"],
        &["a\tb\n\"\\Aé😀\"yb", "a\tb\n\"\\Aé😀xyd"],
    );
    check("root ::= [^a-z]+", &["AZ09", "é"], &["", "Ab"]);
}

#[test]
fn repetition_bounds() {
    let g = r#"root ::= "a"{2} "b"{1,} "c"{0,2} "d"{1,3} "e"* "f"? ("g" "h")+"#;
    check(
        g,
        &["aabdgh", "aabbbccdddeeefghgh", "aabcdgh"],
        &["abdgh", "aadgh", "aabcccdgh", "aabddddgh", "aabdffgh", "aabd"],
    );
    check("root ::= \"x\"{0}", &[""], &["x"]);
    check("root ::= ( \"x\" { 1 , 2 } )", &["x", "xx"], &["", "xxx"]);
}

#[test]
fn multi_line_rules_comments_and_alternatives() {
    check(
        "# a comment\nroot ::= a |\n  b # trailing\n\na ::= (\n  \"x\"\n  \"y\" )\nb ::= \"z\"\n",
        &["xy", "z"],
        &["x", "zz"],
    );
}

fn parse_error(gbnf: &str) -> String {
    Grammar::parse(gbnf).unwrap_err().to_string()
}

#[test]
fn errors_name_the_line_and_column() {
    assert_eq!(
        parse_error("root ::= \"a\"\nb ::= [a"),
        "grammar line 2, column 9: unterminated character class"
    );
    assert_eq!(
        parse_error("root ::= x"),
        "grammar line 1, column 10: undefined rule x"
    );
    assert_eq!(
        parse_error("root := \"a\""),
        "grammar line 1, column 6: expected ::= after the rule name"
    );
    assert_eq!(
        parse_error("root ::= \"\\q\""),
        "grammar line 1, column 11: unknown escape \\q"
    );
    assert_eq!(
        parse_error("root ::= * \"a\""),
        "grammar line 1, column 10: * must follow an item"
    );
    assert_eq!(
        parse_error("root ::= \"a\"{3,2}"),
        "grammar line 1, column 18: repetition maximum below the minimum"
    );
    assert_eq!(
        parse_error("root ::= \"a\"\nroot ::= \"b\""),
        "grammar line 2, column 1: rule root is defined twice"
    );
    assert_eq!(parse_error("a ::= \"a\""), "grammar: no rule named root");
    assert!(parse_error("root ::= \"\\x4\"").contains("\\x needs 2 hex digits"));
    assert_eq!(
        parse_error(&format!("root ::= \"a\"{}", "?".repeat(100_000))),
        "grammar line 1, column 14: ? after a repetition: use parentheses"
    );
    assert!(
        parse_error(&format!("root ::= {}\"a\"{}", "(".repeat(500), ")".repeat(500)))
            .contains("nested too deeply")
    );
}

#[test]
fn left_recursion_is_rejected() {
    for g in [
        "root ::= root \"a\" | \"b\"",
        "root ::= a\na ::= b \"x\"\nb ::= a | \"y\"",
        "root ::= e? root \"x\" | \"y\"\ne ::= \"z\"",
        "root ::= (\"a\"?)*",
    ] {
        let e = parse_error(g);
        assert!(e.contains("left recursion"), "{g}: {e}");
    }
    // Right recursion is fine.
    check("root ::= \"a\" root | \"b\"", &["aab", "b"], &["a"]);
}

#[test]
fn huge_or_hostile_grammars_error_or_stay_bounded() {
    assert!(parse_error("root ::= \"a\"{0,1000000000}").contains("too large"));
    assert!(parse_error("root ::= \"a\"{600000} \"b\"{600000}").contains("too large"));
    // Repeated groups become one rule each: nesting does not multiply the size.
    assert!(Grammar::parse("root ::= ((\"a\"{1000}){1000}){1000}").is_ok());
    assert!(parse_error("root ::= \"a\"{99999999999}").contains("repetition count"));
    // Exponentially ambiguous: many parses of the same text; the matcher caps its stacks
    // and rejects instead of growing without bound.
    let mut m = matcher("root ::= x*\nx ::= \"a\" | \"a\" \"a\" | y\ny ::= \"a\" x?");
    m.reset();
    let fed = (0..200)
        .take_while(|_| m.accept(u32::from(b'a') + 1).is_ok())
        .count();
    assert!(fed > 0);
    let mut logits = vec![0.0; 258];
    m.mask(&mut logits);
    // A grammar no token can start: everything is masked.
    let mut m = GrammarMatcher::new(
        Arc::new(Grammar::parse("root ::= [\\u0100-\\u0101]").unwrap()),
        table(&[]),
    );
    let mut logits = vec![0.0; 258];
    m.mask(&mut logits);
    // Byte tokens can spell U+0100 (C4 80): the lead byte is allowed, nothing else.
    let allowed: Vec<usize> = (0..258).filter(|&i| logits[i] > f32::NEG_INFINITY).collect();
    assert_eq!(allowed, vec![0xc4 + 1]);
}

/// The mask must allow exactly the tokens `accept` takes.
fn mask_agrees_with_accept(gbnf: &str, words: &[&str], prefix: &str) {
    let table = table(words);
    let mut m = GrammarMatcher::new(Arc::new(Grammar::parse(gbnf).unwrap()), table.clone());
    for b in prefix.bytes() {
        m.accept(u32::from(b) + 1).unwrap();
    }
    let vocab = table.vocab_size();
    let mut logits = vec![0.0f32; vocab];
    m.mask(&mut logits);
    for id in 0..vocab as u32 {
        let mut one = m.clone();
        let ok = one.accept(id).is_ok() && (id != EOT || m.is_complete());
        assert_eq!(
            logits[id as usize] > f32::NEG_INFINITY,
            ok,
            "{gbnf} after {prefix:?}: token {id}"
        );
    }
}

#[test]
fn mask_allows_exactly_the_tokens_that_fit() {
    let words = [
        "\"", "\",", "\"}", "ab", "abc", "a\"", "{\"", "\": ", "true", "tr", "12", "1.", ".5", "é",
        "\u{e9}x", "\"é", " \"", "\n", "\n  ", "}}", "ab\"}", "null", "\\n", "\\u00",
    ];
    let json = fixture("json.gbnf");
    for prefix in [
        "",
        "{",
        "{\"",
        "{\"a",
        "{\"a\"",
        "{\"a\":",
        "{\"a\": 1",
        "{\"a\": \"x\"",
        "{\"a\": \"\u{e9}",
    ] {
        mask_agrees_with_accept(&json, &words, prefix);
    }
    // Inside a character: the pending bytes of é (C3 A9) after its first byte.
    let table = table(&words);
    let mut m = GrammarMatcher::new(Arc::new(Grammar::parse(&json).unwrap()), table);
    for b in "{\"a\": \"".bytes().chain([0xc3]) {
        m.accept(u32::from(b) + 1).unwrap();
    }
    assert!(!m.is_complete());
    let mut logits = vec![0.0f32; 258 + words.len()];
    m.mask(&mut logits);
    let allowed: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i] > f32::NEG_INFINITY)
        .collect();
    assert_eq!(
        allowed,
        (0x81..=0xc0).collect::<Vec<_>>(),
        "continuation bytes only"
    );
}

#[test]
fn stop_tokens_only_when_complete_and_specials_never() {
    let mut m = GrammarMatcher::new(
        Arc::new(Grammar::parse("root ::= \"ab\" \"c\"?").unwrap()),
        table(&["ab", "abc"]),
    );
    let special = 259;
    let mut logits = vec![0.0f32; 260];
    m.mask(&mut logits);
    assert_eq!(logits[EOT as usize], f32::NEG_INFINITY);
    assert_eq!(logits[special], f32::NEG_INFINITY);
    assert!(logits[257] == 0.0 && logits[258] == 0.0 && logits[usize::from(b'a') + 1] == 0.0);
    assert!(m.accept(EOT).is_err());
    m.accept(257).unwrap();
    assert!(m.is_complete());
    let mut logits = vec![0.0f32; 260];
    m.mask(&mut logits);
    let allowed: Vec<usize> = (0..260).filter(|&i| logits[i] == 0.0).collect();
    assert_eq!(allowed, vec![EOT as usize, usize::from(b'c') + 1]);
    assert!(m.accept(special as u32).is_err());
    m.accept(EOT).unwrap();
}

#[test]
fn json_schema_objects_enums_arrays_and_lengths() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 3},
            "age": {"type": "integer", "minimum": 0},
            "color": {"enum": ["red", "green", 3]},
            "tags": {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2},
            "note": {"type": ["string", "null"]},
            "when": {"type": "string", "format": "date"},
            "code": {"type": "string", "pattern": "^[A-Z]{2}-\\d+$"}
        },
        "required": ["name", "age"]
    });
    let gbnf = json_schema::to_gbnf(&schema).unwrap();
    check(
        &gbnf,
        &[
            r#"{"name": "Bob", "age": 42}"#,
            r#"{"name":"B","age":0,"color":3,"note":null,"tags":[true, false]}"#,
            r#"{"name": "B", "age": 7, "code": "AB-12", "note": "x", "when": "2024-02-29"}"#,
            "{\n  \"name\": \"Al\",\n  \"age\": 1\n}",
        ],
        &[
            r#"{"age": 42, "name": "Bob"}"#,
            r#"{"name": "", "age": 1}"#,
            r#"{"name": "Bobby", "age": 1}"#,
            r#"{"name": "B", "age": -1}"#,
            r#"{"name": "B", "age": 1, "color": "blue"}"#,
            r#"{"name": "B", "age": 1, "tags": []}"#,
            r#"{"name": "B", "age": 1, "tags": [true, true, true]}"#,
            r#"{"name": "B", "age": 1, "extra": 1}"#,
            r#"{"name": "B", "age": 1, "when": "2024-13-01"}"#,
            r#"{"name": "B", "age": 1, "code": "A-1"}"#,
            r#"{"name": "B", "age": 1}   "#,
        ],
    );
    // No required properties: any subset, in order; an object without properties is any object.
    let gbnf = json_schema::to_gbnf(&json!({
        "properties": {"a": {"const": 1}, "b": {"type": "number"}},
    }))
    .unwrap();
    check(
        &gbnf,
        &["{}", r#"{"b": -1.5e3}"#, r#"{"a": 1, "b": 2}"#],
        &[r#"{"a": 2}"#, r#"{,"b": 1}"#, r#"{"b": 1, "a": 1}"#],
    );
    // A pattern's `.` is any character but a newline, escaped or not.
    let gbnf = json_schema::to_gbnf(&json!({"type": "string", "pattern": "^a.b$"})).unwrap();
    check(
        &gbnf,
        &[r#""a-b""#, r#""aéb""#, r#""a\tb""#, r#""a\"b""#],
        &[r#""a\nb""#, r#""a\u000Ab""#, r#""ab""#],
    );
    let any = Grammar::json_object();
    let mut m = GrammarMatcher::new(Arc::new(any), table(&[]));
    assert!(matches(&mut m, r#"{"x": [1, {"y": null}], "z": "w"}"#));
    assert!(!matches(&mut m, "[1]"));
}

#[test]
fn json_schema_refs_any_of_and_additional_properties() {
    let schema = json!({
        "$defs": {"node": {
            "type": "object",
            "properties": {"v": {"type": "integer", "minimum": 1, "maximum": 3}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
            "required": ["v", "next"]
        }},
        "$ref": "#/$defs/node"
    });
    check(
        &json_schema::to_gbnf(&schema).unwrap(),
        &[r#"{"v": 1, "next": {"v": 3, "next": null}}"#],
        &[r#"{"v": 4, "next": null}"#, r#"{"v": 1, "next": {"v": 2}}"#],
    );
    let map = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    check(
        &json_schema::to_gbnf(&map).unwrap(),
        &["{}", r#"{"a": 1, "b": 2}"#],
        &[r#"{"a": "x"}"#],
    );
    let extra =
        json!({"type": "object", "properties": {"a": {"type": "null"}}, "additionalProperties": true});
    check(
        &json_schema::to_gbnf(&extra).unwrap(),
        &[r#"{"x": 1}"#, r#"{"a": null, "x": 1, "y": []}"#],
        &[r#"{"a": null,}"#],
    );
}

#[test]
fn json_schema_errors_name_the_keyword_and_path() {
    let e = |s: serde_json::Value| json_schema::to_gbnf(&s).unwrap_err().to_string();
    assert_eq!(
        e(json!({"properties": {"a": {"type": "string", "contentEncoding": "base64"}}})),
        "JSON schema at #/properties/a: unsupported keyword \"contentEncoding\""
    );
    assert!(e(json!({"allOf": []})).contains("allOf must be a non-empty array"));
    assert!(e(json!({"not": {}})).contains("unsupported keyword \"not\""));
    assert!(e(json!({"type": "string", "pattern": "abc"})).contains("anchored"));
    assert!(e(json!({"type": "string", "pattern": "^(?=a)$"})).contains("lookaround"));
    assert!(e(json!({"$ref": "http://example.com/s.json"})).contains("$ref"));
    assert!(e(json!({"type": "integer", "minimum": 5, "maximum": 4})).contains("maximum is below minimum"));
    assert!(e(json!({"type": "integer", "minimum": 0.5})).contains("only integer bounds"));
    assert!(e(json!({"type": "object", "required": ["x"]})).contains("\"x\" is not in properties"));
    assert!(e(json!({"type": "frob"})).contains("unknown type"));
    // A keyword that replaces the schema would silently drop its constraining siblings.
    let any_of = json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}]
    });
    assert!(e(any_of).contains("anyOf together with \"properties\" is not supported"));
    assert!(
        e(json!({"$ref": "#/$defs/a", "$defs": {"a": {}}, "minimum": 1}))
            .contains("$ref together with \"minimum\"")
    );
    assert!(e(json!({"enum": ["a", "bb"], "maxLength": 1})).contains("enum together with \"maxLength\""));
    let date = json!({"type": "string", "format": "date", "pattern": "^x$"});
    assert!(e(date).contains("format together with pattern"));
    // The usual spellings beside them still convert.
    for ok in [
        json!({"type": ["string", "null"], "enum": ["a", null], "description": "d"}),
        json!({"$ref": "#/$defs/a", "$defs": {"a": {"type": "string"}}, "title": "t"}),
        json!({"type": "string", "format": "email", "pattern": "^[a-z]+@x$"}),
    ] {
        json_schema::to_gbnf(&ok).unwrap();
    }
    // Huge bounds are refused by the grammar compiler, not expanded.
    let huge = json!({"type": "string", "maxLength": 4_000_000_000u64});
    assert!(
        Grammar::from_json_schema(&huge)
            .unwrap_err()
            .to_string()
            .contains("too large")
    );
    let mut deep = json!(true);
    for _ in 0..100 {
        deep = json!({"type": "array", "items": deep});
    }
    assert!(e(deep).contains("nested more than"));
}

#[test]
fn ascii_loops_do_not_let_other_characters_through() {
    // Every ASCII character loops; "é" is not ASCII and must still be refused.
    mask_agrees_with_accept("root ::= [\\x00-\\x7F]*", &["é", "aé", "ab", "\u{7f}"], "a");
    mask_agrees_with_accept(
        &fixture("json.gbnf"),
        &["é", "aé", "ab", "a\"", "\"}"],
        "{\"a\": \"",
    );
}

#[test]
fn shared_parts_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Grammar>();
    shareable::<TokenTable>();
    shareable::<GrammarMatcher>();
}

#[test]
fn json_schema_integer_bounds_accept_exactly_their_range() {
    let cases = [
        (Some(0), None),
        (Some(1), None),
        (Some(5), None),
        (Some(-37), None),
        (None, Some(0)),
        (None, Some(-1)),
        (None, Some(250)),
        (Some(-1000), Some(1000)),
        (Some(7), Some(7)),
        (Some(-19), Some(-3)),
        (Some(-5), Some(12)),
        (Some(99), Some(1001)),
        (Some(120), Some(4599)),
        (Some(1_000_000), None),
    ];
    let probes: Vec<i64> = (-1100..=1100)
        .chain([
            4598,
            4599,
            4600,
            9999,
            10_000,
            999_999,
            1_000_000,
            123_456_789,
            -123_456_789,
        ])
        .chain([10i64.pow(15), 9_999_999_999_999_999, -9_999_999_999_999_999])
        .collect();
    for (lo, hi) in cases {
        let mut schema = json!({"type": "integer"});
        // The exclusive spellings of the same bounds must give the same grammar.
        let mut exclusive = schema.clone();
        if let Some(lo) = lo {
            schema["minimum"] = json!(lo);
            exclusive["exclusiveMinimum"] = json!(lo - 1);
        }
        if let Some(hi) = hi {
            schema["maximum"] = json!(hi);
            exclusive["exclusiveMaximum"] = json!(hi + 1);
        }
        let gbnf = json_schema::to_gbnf(&schema).unwrap();
        assert_eq!(gbnf, json_schema::to_gbnf(&exclusive).unwrap());
        let mut m = matcher(&gbnf);
        for &n in &probes {
            let want = lo.is_none_or(|lo| n >= lo) && hi.is_none_or(|hi| n <= hi);
            assert_eq!(
                matches(&mut m, &n.to_string()),
                want,
                "{n} in {lo:?}..={hi:?}\n{gbnf}"
            );
        }
        for bad in ["007", "-0", "00", "-", "", "1.0", "+5"] {
            assert!(!matches(&mut m, bad), "{bad:?} in {lo:?}..={hi:?}");
        }
    }
    // Bounds past integral-part's 16 digits: the bound's own length.
    let big = 10i64.pow(17);
    let mut m = matcher(&json_schema::to_gbnf(&json!({"type": "integer", "minimum": big})).unwrap());
    assert!(matches(&mut m, &big.to_string()) && matches(&mut m, &(10 * big - 1).to_string()));
    assert!(!matches(&mut m, &(big - 1).to_string()) && !matches(&mut m, "5"));
    let mut m = matcher(&json_schema::to_gbnf(&json!({"type": "integer", "maximum": i64::MIN + 1})).unwrap());
    assert!(matches(&mut m, &(i64::MIN + 1).to_string()) && !matches(&mut m, "-5"));
    let e = json_schema::to_gbnf(&json!({"type": "integer", "exclusiveMinimum": i64::MAX})).unwrap_err();
    assert!(e.to_string().contains("leaves no integer"), "{e}");
}

#[test]
fn json_schema_all_of_is_one_schema_or_merged_objects() {
    // Pydantic's spelling of an annotated reference.
    let pet = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let schema = json!({
        "type": "object",
        "properties": {"pet": {"allOf": [{"$ref": "#/$defs/Pet"}], "description": "the pet"}},
        "required": ["pet"],
        "$defs": {"Pet": pet}
    });
    check(
        &json_schema::to_gbnf(&schema).unwrap(),
        &[r#"{"pet": {"name": "Rex"}}"#],
        &[r#"{"pet": {}}"#, r#"{"pet": "Rex"}"#],
    );
    // Several object schemas: properties and required names together.
    let merged = json!({
        "allOf": [
            {"$ref": "#/$defs/Pet"},
            {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}, "required": ["age"]},
            {"properties": {"name": {"type": "string"}, "tag": {"type": "string"}}, "additionalProperties": false}
        ],
        "$defs": {"Pet": pet}
    });
    check(
        &json_schema::to_gbnf(&merged).unwrap(),
        &[
            r#"{"name": "Rex", "age": 3}"#,
            r#"{"name": "Rex", "age": 3, "tag": "x"}"#,
        ],
        &[
            r#"{"name": "Rex"}"#,
            r#"{"age": 3}"#,
            r#"{"name": "Rex", "age": -1}"#,
            r#"{"name": "R", "age": 1, "x": 1}"#,
        ],
    );
    let e = |s: serde_json::Value| json_schema::to_gbnf(&s).unwrap_err().to_string();
    let not_object = json!({"allOf": [{"type": "string"}, {"type": "object"}]});
    assert!(e(not_object).contains("#/allOf/0: allOf of several schemas"));
    let twice = json!({"allOf": [
        {"properties": {"a": {"type": "string"}}},
        {"properties": {"a": {"type": "integer"}}}
    ]});
    assert!(e(twice).contains("property \"a\" is defined twice"));
    let open = json!({"allOf": [{"properties": {"a": {}}}, {"additionalProperties": true}]});
    assert!(e(open).contains("#/allOf/1: allOf of several schemas"));
    let beside = json!({"allOf": [{"type": "object"}], "properties": {"a": {}}});
    assert!(e(beside).contains("allOf together with \"properties\""));
    let missing = json!({"allOf": [{"properties": {"a": {}}}, {"required": ["b"]}]});
    assert!(e(missing).contains("required property \"b\" is not in properties"));
    // A merged property's error names where it was written.
    let bad = json!({"not": {}});
    let inline = e(json!({"allOf": [{"properties": {"a": {}}}, {"properties": {"b": bad}}]}));
    assert!(inline.contains("#/allOf/1/properties/b:"), "{inline}");
    let referred = e(json!({
        "allOf": [{"properties": {"a": {}}}, {"$ref": "#/$defs/B"}],
        "$defs": {"B": {"properties": {"b": bad}}}
    }));
    assert!(referred.contains("#/$defs/B/properties/b:"), "{referred}");
}
