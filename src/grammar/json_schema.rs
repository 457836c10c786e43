//! JSON schema (the common subset) into GBNF, after llama.cpp's `json-schema-to-grammar`.
//!
//! Supported: `type` (one or a list: `["string", "null"]`), `properties`, `required`,
//! `additionalProperties`, `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
//! `pattern` (anchored `^...$`, literals, classes, `.`, `\d \w \s`, groups, `|`,
//! quantifiers), `format` (`date`, `time`, `date-time`, `uuid`; others are plain strings),
//! `enum`, `const`, `anyOf`/`oneOf`, `allOf` (one schema, or object schemas merged), `$ref`
//! to `#/$defs/...` or `#/definitions/...` (recursion included), integer bounds (`minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, any integers), number minimum 0.
//! Annotations (`title`, `description`, `default`, `examples`, ...) are ignored; any other
//! keyword is an error naming it, as is a constraint that would be dropped (a sibling of
//! `$ref`, `anyOf`, `oneOf`, `allOf`, `enum`, `const`; `format` with `pattern`).
//!
//! Choices: properties come in the order of `required`, then the optional ones in name order;
//! `additionalProperties` defaults to false when `properties` is given (an object schema
//! without `properties` takes any object); whitespace between tokens is bounded (a space, or
//! a newline and up to 20 spaces or tabs) so a model cannot loop on it.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::GrammarError;

/// Deepest nesting of schemas followed.
const MAX_DEPTH: usize = 64;

/// Rules every converted schema may use.
const PRIMITIVES: &str = r#"space ::= | " " | "\n" [ \t]{0,20}
boolean ::= ("true" | "false") space
null ::= "null" space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
dot ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\/bfrt])
string ::= "\"" char* "\"" space
integral-part ::= [0] | [1-9] [0-9]{0,15}
decimal-part ::= [0-9]{1,16}
integer ::= "-"? integral-part space
number ::= "-"? integral-part ("." decimal-part)? ([eE] [-+]? integral-part)? space
value ::= object | array | string | number | boolean | null
object ::= "{" space (string ":" space value ("," space string ":" space value)*)? "}" space
array ::= "[" space (value ("," space value)*)? "]" space
date ::= [0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])
time ::= ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,9})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])
hex ::= [0-9a-fA-F]
uuid ::= hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12}
"#;

/// Keywords that do not constrain the text.
const ANNOTATIONS: [&str; 10] = [
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords the converter understands.
const KEYWORDS: [&str; 23] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
];

/// The GBNF grammar (root rule `root`) of the JSON texts that satisfy `schema`.
pub fn to_gbnf(schema: &Value) -> Result<String, GrammarError> {
    let mut c = Converter {
        root: schema,
        rules: Vec::new(),
        refs: HashMap::new(),
    };
    let root = c.visit(schema, "#", 0)?;
    let mut out = format!("root ::= {root}\n");
    for (name, body) in &c.rules {
        let _ = writeln!(out, "{name} ::= {body}");
    }
    out.push_str(PRIMITIVES);
    Ok(out)
}

struct Converter<'a> {
    root: &'a Value,
    /// Generated rules: name, body.
    rules: Vec<(String, String)>,
    /// `$ref` target → rule name.
    refs: HashMap<String, String>,
}

fn error(path: &str, message: impl Into<String>) -> GrammarError {
    GrammarError::Schema {
        path: path.to_string(),
        message: message.into(),
    }
}

/// A GBNF string literal of `text`.
fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The GBNF literal of `value`'s JSON text, with trailing space.
fn json_literal(value: &Value) -> String {
    format!("{} space", literal(&value.to_string()))
}

fn count(s: &serde_json::Map<String, Value>, key: &str, path: &str) -> Result<Option<u32>, GrammarError> {
    match s.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| error(path, format!("{key} must be a non-negative integer"))),
    }
}

/// `{min,max}` in GBNF.
fn bounds(min: u32, max: Option<u32>) -> String {
    match max {
        Some(max) => format!("{{{min},{max}}}"),
        None => format!("{{{min},}}"),
    }
}

/// Why `s` cannot be converted faithfully, when a keyword that replaces the schema (`$ref`,
/// `anyOf`, `oneOf`, `allOf`, `const`, `enum`) has a constraining sibling that would be dropped.
fn dropped_sibling(s: &serde_json::Map<String, Value>) -> Option<String> {
    let whole = ["$ref", "anyOf", "oneOf", "allOf", "const", "enum"];
    let key = whole.into_iter().find(|k| s.contains_key(*k))?;
    // `type` beside `const`/`enum` is the usual spelling and adds nothing the values do not say.
    let harmless = |k: &str| {
        ANNOTATIONS.contains(&k)
            || k == key
            || k == "$defs"
            || k == "definitions"
            || (k == "type" && matches!(key, "const" | "enum"))
    };
    let other = s.keys().find(|k| !harmless(k))?;
    Some(format!("{key} together with {other:?} is not supported"))
}

impl<'a> Converter<'a> {
    /// A new rule named after `base` (made unique), returning its name.
    fn rule(&mut self, base: &str, body: String) -> String {
        let base: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = format!("{base}-{}", self.rules.len());
        self.rules.push((name.clone(), body));
        name
    }

    /// A GBNF expression for `schema` (its text ends with `space`).
    fn visit(&mut self, schema: &Value, path: &str, depth: usize) -> Result<String, GrammarError> {
        if depth > MAX_DEPTH {
            return Err(error(path, format!("schemas nested more than {MAX_DEPTH} deep")));
        }
        let s = match schema {
            Value::Bool(true) => return Ok("value".into()),
            Value::Object(s) => s,
            _ => return Err(error(path, "a schema must be an object or true")),
        };
        if let Some(k) = s
            .keys()
            .find(|k| !KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()))
        {
            return Err(error(path, format!("unsupported keyword {k:?}")));
        }
        if let Some(clash) = dropped_sibling(s) {
            return Err(error(path, clash));
        }
        if let Some(r) = s.get("$ref") {
            return self.reference(r, path, depth);
        }
        if let Some(v) = s.get("const") {
            return Ok(json_literal(v));
        }
        if let Some(v) = s.get("enum") {
            let Some(values) = v.as_array().filter(|a| !a.is_empty()) else {
                return Err(error(path, "enum must be a non-empty array"));
            };
            let alts: Vec<String> = values.iter().map(json_literal).collect();
            return Ok(format!("({})", alts.join(" | ")));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(v) = s.get(key) {
                let Some(subs) = v.as_array().filter(|a| !a.is_empty()) else {
                    return Err(error(path, format!("{key} must be a non-empty array")));
                };
                let mut alts = Vec::with_capacity(subs.len());
                for (i, sub) in subs.iter().enumerate() {
                    alts.push(self.visit(sub, &format!("{path}/{key}/{i}"), depth + 1)?);
                }
                return Ok(format!("({})", alts.join(" | ")));
            }
        }
        if let Some(v) = s.get("allOf") {
            return self.all_of(v, path, depth);
        }
        match s.get("type") {
            Some(Value::String(t)) => self.typed(t, s, path, depth),
            Some(Value::Array(types)) if !types.is_empty() => {
                let mut alts = Vec::with_capacity(types.len());
                for t in types {
                    let Some(t) = t.as_str() else {
                        return Err(error(path, "type must be a string or an array of strings"));
                    };
                    alts.push(self.typed(t, s, path, depth)?);
                }
                Ok(format!("({})", alts.join(" | ")))
            }
            Some(_) => Err(error(path, "type must be a string or an array of strings")),
            None if s.contains_key("properties") => self.typed("object", s, path, depth),
            None if s.contains_key("items") => self.typed("array", s, path, depth),
            None => Ok("value".into()),
        }
    }

    /// `allOf`: one schema is that schema (pydantic writes `{"allOf": [{"$ref": ...}]}` to
    /// annotate a reference); several must be object schemas (or `$ref`s to them), merged as
    /// llama.cpp does: their properties and required names together.
    fn all_of(&mut self, v: &Value, path: &str, depth: usize) -> Result<String, GrammarError> {
        let Some(subs) = v.as_array().filter(|a| !a.is_empty()) else {
            return Err(error(path, "allOf must be a non-empty array"));
        };
        if let [only] = subs.as_slice() {
            return self.visit(only, &format!("{path}/allOf/0"), depth + 1);
        }
        let (mut props, mut required) = (serde_json::Map::new(), Vec::<Value>::new());
        // Where each property's schema was written, for the paths in errors.
        let mut origins = HashMap::new();
        for (i, sub) in subs.iter().enumerate() {
            let at = format!("{path}/allOf/{i}");
            let (sub, origin) = match sub.get("$ref") {
                Some(r) => (self.target(r, &at)?, r.as_str().unwrap_or_default().to_string()),
                None => (sub, at.clone()),
            };
            // `additionalProperties: false` (pydantic's `extra="forbid"`) is the merged object's
            // own default; any other value would need the other parts' properties to judge.
            let merge = |k: &String| {
                matches!(k.as_str(), "properties" | "required" | "type")
                    || ANNOTATIONS.contains(&k.as_str())
                    || (k == "additionalProperties" && sub.get(k) == Some(&Value::Bool(false)))
            };
            let Some(s) = sub
                .as_object()
                .filter(|s| s.keys().all(merge) && s.get("type").is_none_or(|t| t == "object"))
            else {
                return Err(error(
                    &at,
                    "allOf of several schemas: each must be an object schema (type, properties, required, additionalProperties false) or a $ref to one",
                ));
            };
            if let Some(p) = s.get("properties") {
                let p = p
                    .as_object()
                    .ok_or_else(|| error(&at, "properties must be an object"))?;
                for (name, schema) in p {
                    if props.get(name).is_some_and(|had| had != schema) {
                        return Err(error(
                            &at,
                            format!("allOf: property {name:?} is defined twice, differently"),
                        ));
                    }
                    props.insert(name.clone(), schema.clone());
                    origins.insert(name.clone(), format!("{origin}/properties/{name}"));
                }
            }
            if let Some(r) = s.get("required") {
                let r = r
                    .as_array()
                    .ok_or_else(|| error(&at, "required must be an array"))?;
                for name in r {
                    if !required.contains(name) {
                        required.push(name.clone());
                    }
                }
            }
        }
        let merged = serde_json::Map::from_iter([
            ("properties".to_string(), Value::Object(props)),
            ("required".to_string(), Value::Array(required)),
        ]);
        self.object(&merged, (path, &|name| origins[name].clone()), depth)
    }

    /// The schema a local `$ref` names.
    fn target(&self, r: &Value, path: &str) -> Result<&'a Value, GrammarError> {
        let Some(r) = r.as_str() else {
            return Err(error(path, "$ref must be a string"));
        };
        ["#/$defs/", "#/definitions/"]
            .iter()
            .any(|p| r.starts_with(p))
            .then(|| self.root.pointer(&r[1..]))
            .flatten()
            .ok_or_else(|| {
                error(
                    path,
                    format!(
                        "$ref {r:?}: only #/$defs/NAME and #/definitions/NAME of this schema are supported"
                    ),
                )
            })
    }

    fn reference(&mut self, r: &Value, path: &str, depth: usize) -> Result<String, GrammarError> {
        let target = self.target(r, path)?;
        let r = r.as_str().unwrap_or_default();
        if let Some(name) = self.refs.get(r) {
            return Ok(name.clone());
        }
        let base = format!("ref{}", r.rsplit('/').next().unwrap_or_default());
        // Named before its body is made, so that a recursive reference finds it.
        let name = self.rule(&base, String::new());
        self.refs.insert(r.to_string(), name.clone());
        let body = self.visit(target, r, depth + 1)?;
        if let Some(rule) = self.rules.iter_mut().find(|(n, _)| *n == name) {
            rule.1 = body;
        }
        Ok(name)
    }

    fn typed(
        &mut self,
        t: &str,
        s: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<String, GrammarError> {
        match t {
            "object" => self.object(s, (path, &|name| format!("{path}/properties/{name}")), depth),
            "array" => self.array(s, path, depth),
            "string" => string(s, path),
            "integer" => integer(s, path),
            "number" => number(s, path),
            "boolean" => Ok("boolean".into()),
            "null" => Ok("null".into()),
            _ => Err(error(path, format!("unknown type {t:?}"))),
        }
    }

    /// An object schema at `path`, whose property `name`'s schema is at `property_path(name)`.
    fn object(
        &mut self,
        s: &serde_json::Map<String, Value>,
        (path, property_path): (&str, &dyn Fn(&str) -> String),
        depth: usize,
    ) -> Result<String, GrammarError> {
        let empty = serde_json::Map::new();
        let props = match s.get("properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Err(error(path, "properties must be an object")),
        };
        let required: Vec<&str> = match s.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| error(path, "required must list property names"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(error(path, "required must be an array")),
        };
        if let Some(missing) = required.iter().find(|r| !props.contains_key(**r)) {
            return Err(error(
                path,
                format!("required property {missing:?} is not in properties"),
            ));
        }
        let additional = match s.get("additionalProperties") {
            None if props.is_empty() => Some("value".to_string()),
            None | Some(Value::Bool(false)) => None,
            Some(v) => Some(self.visit(v, &format!("{path}/additionalProperties"), depth + 1)?),
        };
        let kv = |this: &mut Self, name: &str| -> Result<String, GrammarError> {
            let value = this.visit(&props[name], &property_path(name), depth + 1)?;
            let key = literal(&Value::String(name.into()).to_string());
            Ok(format!("{key} space \":\" space {value}"))
        };
        let mut req = Vec::with_capacity(required.len());
        for r in &required {
            req.push(kv(self, r)?);
        }
        let mut opt = Vec::new();
        for name in props.keys().filter(|k| !required.contains(&k.as_str())) {
            opt.push(kv(self, name)?);
        }
        if let Some(v) = &additional {
            opt.push(format!("string \":\" space {v}"));
        }
        // rest[i]: optional members i.. each with a leading comma; the additional one repeats.
        let mut rest = vec![String::new(); opt.len() + 1];
        for i in (0..opt.len()).rev() {
            let repeat = if additional.is_some() && i + 1 == opt.len() {
                "*"
            } else {
                "?"
            };
            let body = format!("(\",\" space {}){repeat} {}", opt[i], rest[i + 1]);
            rest[i] = self.rule("rest", body);
        }
        let body = if req.is_empty() {
            let firsts: Vec<String> = opt
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let next = if additional.is_some() && i + 1 == opt.len() {
                        &rest[i]
                    } else {
                        &rest[i + 1]
                    };
                    format!("{o} {next}")
                })
                .collect();
            if firsts.is_empty() {
                String::new()
            } else {
                format!("({})?", firsts.join(" | "))
            }
        } else {
            format!("{} {}", req.join(" \",\" space "), rest[0])
        };
        Ok(format!("\"{{\" space {body} \"}}\" space"))
    }

    fn array(
        &mut self,
        s: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<String, GrammarError> {
        let item = match s.get("items") {
            None => "value".to_string(),
            Some(items) => {
                let body = self.visit(items, &format!("{path}/items"), depth + 1)?;
                self.rule("item", body)
            }
        };
        let min = count(s, "minItems", path)?.unwrap_or(0);
        let max = count(s, "maxItems", path)?;
        let body = match max {
            Some(0) => String::new(),
            Some(m) if m < min => return Err(error(path, "maxItems is below minItems")),
            _ => {
                let more = bounds(min.saturating_sub(1), max.map(|m| m - 1));
                let list = format!("{item} (\",\" space {item}){more}");
                if min == 0 { format!("({list})?") } else { list }
            }
        };
        Ok(format!("\"[\" space {body} \"]\" space"))
    }
}

fn string(s: &serde_json::Map<String, Value>, path: &str) -> Result<String, GrammarError> {
    let min = count(s, "minLength", path)?;
    let max = count(s, "maxLength", path)?;
    let format = match s.get("format").and_then(Value::as_str) {
        Some(f @ ("date" | "time" | "uuid")) => Some(f.to_string()),
        Some("date-time") => Some("date \"T\" time".to_string()),
        _ => None,
    };
    let pattern = match s.get("pattern") {
        None => None,
        Some(Value::String(p)) => Some(pattern(p, path)?),
        Some(_) => return Err(error(path, "pattern must be a string")),
    };
    if format.is_some() && pattern.is_some() {
        return Err(error(path, "format together with pattern is not supported"));
    }
    match (format.or(pattern), min.is_some() || max.is_some()) {
        (Some(_), true) => Err(error(
            path,
            "minLength/maxLength together with pattern or format are not supported",
        )),
        (Some(inner), false) => Ok(format!("\"\\\"\" {inner} \"\\\"\" space")),
        (None, true) => {
            let min = min.unwrap_or(0);
            if max.is_some_and(|m| m < min) {
                return Err(error(path, "maxLength is below minLength"));
            }
            Ok(format!("\"\\\"\" char{} \"\\\"\" space", bounds(min, max)))
        }
        (None, false) => Ok("string".into()),
    }
}

/// An integer bound: `key`, or `exclusive` moved by `step`.
fn bound(
    s: &serde_json::Map<String, Value>,
    key: &str,
    exclusive: &str,
    step: i64,
    path: &str,
) -> Result<Option<i64>, GrammarError> {
    let get = |k: &str| match s.get(k) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| error(path, format!("{k}: only integer bounds are supported"))),
    };
    match (get(key)?, get(exclusive)?) {
        (Some(_), Some(_)) => Err(error(
            path,
            format!("{key} together with {exclusive} is not supported"),
        )),
        (b, None) => Ok(b),
        (None, Some(e)) => e
            .checked_add(step)
            .map(Some)
            .ok_or_else(|| error(path, format!("{exclusive} {e} leaves no integer"))),
    }
}

fn integer(s: &serde_json::Map<String, Value>, path: &str) -> Result<String, GrammarError> {
    let min = bound(s, "minimum", "exclusiveMinimum", 1, path)?;
    let max = bound(s, "maximum", "exclusiveMaximum", -1, path)?;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(error(path, "maximum is below minimum"));
    }
    if (min, max) == (None, None) {
        return Ok("integer".into());
    }
    // Negative values are "-" and a magnitude; the magnitudes and the rest are digit ranges.
    let mut alts = Vec::new();
    if min.is_none_or(|lo| lo < 0) {
        let from = max.map_or(1, |hi| hi.saturating_neg().max(1)).unsigned_abs();
        let to = min.map(i64::unsigned_abs);
        alts.push(format!("\"-\" {}", paren(&digits_between(from, to))));
    }
    if max.is_none_or(|hi| hi >= 0) {
        let from = min.map_or(0, |lo| lo.max(0)).unsigned_abs();
        alts.push(digits_between(from, max.map(i64::unsigned_abs)));
    }
    Ok(format!("{} space", paren(&alts.join(" | "))))
}

/// Longest integer spelled (as `integral-part`: 16 digits).
const MAX_DIGITS: usize = 16;

/// GBNF for the decimal spellings (no sign, no leading zero) of the integers from `lo` to `hi`
/// (`None`: any of up to [`MAX_DIGITS`] digits, or `lo`'s), digit by digit, as llama.cpp's
/// `_generate_min_max_int` does.
fn digits_between(lo: u64, hi: Option<u64>) -> String {
    let (lo_s, hi_s) = (lo.to_string(), hi.map(|h| h.to_string()));
    // Without an upper bound, as long as `integral-part` spells, or `lo` if that is longer.
    let top = hi_s.as_ref().map_or(MAX_DIGITS.max(lo_s.len()), String::len);
    let mut alts = Vec::new();
    for len in lo_s.len()..=top {
        if hi.is_none() && len > lo_s.len() {
            // Every longer spelling at once.
            alts.push(format!("[1-9] [0-9]{{{},{}}}", len - 1, top - 1));
            break;
        }
        let from = if len == lo_s.len() {
            lo_s.clone()
        } else {
            format!("1{}", "0".repeat(len - 1))
        };
        let to = match &hi_s {
            Some(h) if h.len() == len => h.clone(),
            _ => "9".repeat(len),
        };
        alts.push(same_length(from.as_bytes(), to.as_bytes()));
    }
    alts.join(" | ")
}

/// GBNF for the digit strings of `a`'s length from `a` to `b` (`a <= b`).
fn same_length(a: &[u8], b: &[u8]) -> String {
    let Some((&a0, a_rest)) = a.split_first() else {
        return String::new();
    };
    let (b0, b_rest) = (b[0], &b[1..]);
    let n = a_rest.len();
    let any = |n: usize| {
        if n == 0 {
            String::new()
        } else {
            format!(" [0-9]{{{n}}}")
        }
    };
    if a0 == b0 {
        let rest = same_length(a_rest, b_rest);
        return format!("\"{}\" {}", a0 as char, paren(&rest))
            .trim_end()
            .to_owned();
    }
    if a_rest.iter().all(|&c| c == b'0') && b_rest.iter().all(|&c| c == b'9') {
        return format!("[{}-{}]{}", a0 as char, b0 as char, any(n));
    }
    let mut alts = vec![format!(
        "\"{}\" {}",
        a0 as char,
        paren(&same_length(a_rest, "9".repeat(n).as_bytes()))
    )];
    if a0 + 2 == b0 {
        alts.push(format!("\"{}\"{}", (a0 + 1) as char, any(n)));
    } else if a0 + 2 < b0 {
        alts.push(format!("[{}-{}]{}", (a0 + 1) as char, (b0 - 1) as char, any(n)));
    }
    alts.push(format!(
        "\"{}\" {}",
        b0 as char,
        paren(&same_length("0".repeat(n).as_bytes(), b_rest))
    ));
    alts.join(" | ")
}

/// `e` in parentheses where it has alternatives.
fn paren(e: &str) -> String {
    if e.contains(" | ") {
        format!("({e})")
    } else {
        e.to_owned()
    }
}

fn number(s: &serde_json::Map<String, Value>, path: &str) -> Result<String, GrammarError> {
    let min = s.get("minimum").map(|v| v.as_f64());
    if s.contains_key("maximum") || s.contains_key("exclusiveMinimum") || s.contains_key("exclusiveMaximum") {
        return Err(error(path, "number bounds: only minimum 0 is supported"));
    }
    match min {
        None => Ok("number".into()),
        Some(Some(0.0)) => Ok("integral-part (\".\" decimal-part)? ([eE] [-+]? integral-part)? space".into()),
        Some(_) => Err(error(path, "number bounds: only minimum 0 is supported")),
    }
}

/// A GBNF expression for the JSON string content matching regular expression `p` (the
/// simple, anchored kind), or an error saying what is not supported.
fn pattern(p: &str, path: &str) -> Result<String, GrammarError> {
    let unsupported = |what: &str| error(path, format!("pattern {p:?}: {what}"));
    let inner = p
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .filter(|i| !i.ends_with('\\'))
        .ok_or_else(|| unsupported("must be anchored with ^ and $"))?;
    let chars: Vec<char> = inner.chars().collect();
    let mut r = Regex {
        chars: &chars,
        pos: 0,
        depth: 0,
    };
    let out = r.alternatives().map_err(|m| unsupported(&m))?;
    if r.pos < chars.len() {
        return Err(unsupported(&format!("unexpected {:?}", chars[r.pos])));
    }
    Ok(format!("({out})"))
}

/// A regular expression into GBNF over JSON string content.
struct Regex<'a> {
    chars: &'a [char],
    pos: usize,
    depth: usize,
}

/// A class member in GBNF class syntax.
fn class_char(c: char) -> String {
    if c.is_ascii_alphanumeric() || c == ' ' {
        c.to_string()
    } else if (c as u32) <= 0xffff {
        format!("\\u{:04X}", c as u32)
    } else {
        format!("\\U{:08X}", c as u32)
    }
}

/// A pattern character as JSON string content, in GBNF.
fn content_char(c: char) -> Result<String, String> {
    match c {
        '"' => Ok(literal("\\\"")),
        '\\' => Ok(literal("\\\\")),
        '\n' => Ok(literal("\\n")),
        '\t' => Ok(literal("\\t")),
        c if (c as u32) < 0x20 => Err(format!("control character {c:?}")),
        c => Ok(literal(&c.to_string())),
    }
}

impl Regex<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternatives(&mut self) -> Result<String, String> {
        let mut alts = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.sequence()?);
        }
        Ok(alts.join(" | "))
    }

    fn sequence(&mut self) -> Result<String, String> {
        let mut items: Vec<String> = Vec::new();
        while let Some(c) = self.peek() {
            let atom = match c {
                '|' | ')' => break,
                '(' => {
                    self.pos += 1;
                    if self.chars[self.pos..].starts_with(&['?', ':']) {
                        self.pos += 2;
                    } else if self.peek() == Some('?') {
                        return Err("lookaround and named groups are not supported".into());
                    }
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err("groups nested too deeply".into());
                    }
                    let inner = self.alternatives()?;
                    self.depth -= 1;
                    if self.peek() != Some(')') {
                        return Err("unclosed group".into());
                    }
                    self.pos += 1;
                    format!("({inner})")
                }
                '[' => self.class()?,
                '.' => {
                    // Not `char`: `.` matches no newline, which `\n` and `\u000A` would give.
                    self.pos += 1;
                    "dot".into()
                }
                '\\' => {
                    self.pos += 1;
                    let e = self.peek().ok_or("trailing \\")?;
                    self.pos += 1;
                    match e {
                        'd' => "[0-9]".into(),
                        'w' => "[a-zA-Z0-9_]".into(),
                        's' => "(\" \" | \"\\\\t\" | \"\\\\n\")".into(),
                        e if e.is_ascii_punctuation() => content_char(e)?,
                        e => return Err(format!("escape \\{e} is not supported")),
                    }
                }
                '*' | '+' | '?' | '{' => return Err(format!("{c} must follow an item")),
                '^' | '$' => return Err("anchors inside the pattern are not supported".into()),
                c => {
                    self.pos += 1;
                    content_char(c)?
                }
            };
            let quantifier = self.quantifier()?;
            items.push(format!("{atom}{quantifier}"));
        }
        Ok(items.join(" "))
    }

    fn quantifier(&mut self) -> Result<String, String> {
        let q = match self.peek() {
            Some(c @ ('*' | '+' | '?')) => {
                self.pos += 1;
                c.to_string()
            }
            Some('{') => {
                let end = self.chars[self.pos..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or("unclosed {")?;
                let body: String = self.chars[self.pos + 1..self.pos + end].iter().collect();
                if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == ',') {
                    return Err(format!("bad repetition {{{body}}}"));
                }
                self.pos += end + 1;
                format!("{{{body}}}")
            }
            _ => return Ok(String::new()),
        };
        if matches!(self.peek(), Some('?' | '+')) {
            return Err("lazy and possessive quantifiers are not supported".into());
        }
        Ok(q)
    }

    /// `[...]`: members must be plain characters (no `"`, `\` or control characters).
    fn class(&mut self) -> Result<String, String> {
        self.pos += 1;
        let negated = self.peek() == Some('^');
        self.pos += usize::from(negated);
        let mut out = String::from(if negated { "[^\"\\\\\\x00-\\x1F" } else { "[" });
        let mut first = true;
        loop {
            let c = self.peek().ok_or("unclosed [")?;
            self.pos += 1;
            match c {
                ']' if !first => break,
                '\\' => {
                    let e = self.peek().ok_or("trailing \\")?;
                    self.pos += 1;
                    match e {
                        'd' => out.push_str("0-9"),
                        'w' => out.push_str("a-zA-Z0-9_"),
                        e if e.is_ascii_punctuation() && e != '"' && e != '\\' => {
                            out.push_str(&class_char(e))
                        }
                        e => return Err(format!("\\{e} in a class is not supported")),
                    }
                }
                '"' => return Err("\" in a class is not supported".into()),
                c if (c as u32) < 0x20 => {
                    return Err("control characters in a class are not supported".into());
                }
                c => {
                    out.push_str(&class_char(c));
                    if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                        let hi = self.chars[self.pos + 1];
                        if hi == '\\' || hi == '"' || hi < c {
                            return Err(format!("range {c}-{hi} is not supported"));
                        }
                        out.push('-');
                        out.push_str(&class_char(hi));
                        self.pos += 2;
                    }
                }
            }
            first = false;
        }
        out.push(']');
        Ok(out)
    }
}
