//! llama.cpp's GBNF syntax into expressions: `name ::= alternatives`, one rule per line (a
//! rule continues over newlines after `::=`, after `|` and inside parentheses), `#` comments.

use super::GrammarError;

/// Deepest nesting of parentheses (the parser recurses on them).
const MAX_NESTING: usize = 128;

/// One item of a sequence.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    /// A string of characters.
    Literal(Vec<u32>),
    /// A character class: `[a-z]`, `[^"]`, `.` (negated and empty).
    Class { negated: bool, ranges: Vec<(u32, u32)> },
    /// A reference to a rule, with its position in the text for errors.
    Ref(String, usize),
    /// Parenthesised alternatives.
    Group(Vec<Vec<Expr>>),
    /// `item{min,max}`; `max` `None` is unbounded.
    Repeat(Box<Expr>, u32, Option<u32>),
}

/// A rule as written: name, position of the name, alternatives.
pub(crate) struct RuleDef {
    pub name: String,
    pub at: usize,
    pub alts: Vec<Vec<Expr>>,
}

/// The rules of a GBNF text.
pub(crate) fn parse(text: &str) -> Result<Vec<RuleDef>, GrammarError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let mut rules = Vec::new();
    p.space(true);
    while p.pos < p.chars.len() {
        let at = p.pos;
        let name = p.name()?;
        p.space(false);
        if !p.eat_str("::=") {
            return Err(p.error("expected ::= after the rule name"));
        }
        p.space(true);
        let alts = p.alternatives(0)?;
        match p.peek() {
            None => {}
            Some('\n' | '\r') => p.space(true),
            Some(c) => return Err(p.error(&format!("unexpected {c:?}"))),
        }
        rules.push(RuleDef { name, at, alts });
    }
    Ok(rules)
}

/// 1-based line and column (in characters) of character `pos` of `chars`.
pub(crate) fn line_column(chars: &[char], pos: usize) -> (usize, usize) {
    let before = &chars[..pos.min(chars.len())];
    let line = before.iter().filter(|&&c| c == '\n').count() + 1;
    let column = before.iter().rev().take_while(|&&c| c != '\n').count() + 1;
    (line, column)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl Parser {
    fn error(&self, message: &str) -> GrammarError {
        let (line, column) = line_column(&self.chars, self.pos);
        GrammarError::Parse {
            line,
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        self.pos += usize::from(hit);
        hit
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        let hit = self.chars.len() >= self.pos + n
            && s.chars().eq(self.chars[self.pos..self.pos + n].iter().copied());
        if hit {
            self.pos += n;
        }
        hit
    }

    /// Skips spaces, tabs and comments, and newlines when `newlines`.
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => self.pos += 1,
                '\r' | '\n' if newlines => self.pos += 1,
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn name(&mut self) -> Result<String, GrammarError> {
        let start = self.pos;
        while self.peek().is_some_and(is_word) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error("expected a rule name"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn alternatives(&mut self, depth: usize) -> Result<Vec<Vec<Expr>>, GrammarError> {
        let mut alts = vec![self.sequence(depth)?];
        while self.eat('|') {
            self.space(true);
            alts.push(self.sequence(depth)?);
        }
        Ok(alts)
    }

    fn sequence(&mut self, depth: usize) -> Result<Vec<Expr>, GrammarError> {
        let nested = depth > 0;
        let mut seq: Vec<Expr> = Vec::new();
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                '"' => {
                    self.pos += 1;
                    let mut lit = Vec::new();
                    loop {
                        match self.peek() {
                            None | Some('\n') => return Err(self.error("unterminated string literal")),
                            Some('"') => break,
                            Some(_) => lit.push(self.char()?),
                        }
                    }
                    self.pos += 1;
                    seq.push(Expr::Literal(lit));
                }
                '[' => {
                    self.pos += 1;
                    let negated = self.eat('^');
                    let mut ranges = Vec::new();
                    loop {
                        match self.peek() {
                            None | Some('\n') => return Err(self.error("unterminated character class")),
                            Some(']') => break,
                            Some(_) => {}
                        }
                        let lo = self.char()?;
                        let hi = if self.peek() == Some('-') && self.chars.get(self.pos + 1) != Some(&']') {
                            self.pos += 1;
                            self.char()?
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(self.error("character range out of order"));
                        }
                        ranges.push((lo, hi));
                    }
                    self.pos += 1;
                    seq.push(Expr::Class { negated, ranges });
                }
                '.' => {
                    self.pos += 1;
                    seq.push(Expr::Class {
                        negated: true,
                        ranges: Vec::new(),
                    });
                }
                '(' => {
                    if depth >= MAX_NESTING {
                        return Err(self.error("parentheses nested too deeply"));
                    }
                    self.pos += 1;
                    self.space(true);
                    let alts = self.alternatives(depth + 1)?;
                    if !self.eat(')') {
                        return Err(self.error("expected )"));
                    }
                    seq.push(Expr::Group(alts));
                }
                '*' | '+' | '?' | '{' => {
                    let Some(item) = seq.pop() else {
                        return Err(self.error(&format!("{c} must follow an item")));
                    };
                    if matches!(item, Expr::Repeat(..)) {
                        return Err(self.error(&format!("{c} after a repetition: use parentheses")));
                    }
                    let (min, max) = self.repetition()?;
                    seq.push(Expr::Repeat(Box::new(item), min, max));
                }
                c if is_word(c) => {
                    let name = self.name()?;
                    seq.push(Expr::Ref(name, start));
                }
                _ => break,
            }
            self.space(nested);
        }
        Ok(seq)
    }

    /// The bounds of `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`.
    fn repetition(&mut self) -> Result<(u32, Option<u32>), GrammarError> {
        let c = self.peek();
        self.pos += 1;
        match c {
            Some('*') => return Ok((0, None)),
            Some('+') => return Ok((1, None)),
            Some('?') => return Ok((0, Some(1))),
            _ => {}
        }
        self.space(false);
        let min = self.number()?;
        self.space(false);
        let max = if self.eat(',') {
            self.space(false);
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                Some(self.number()?)
            } else {
                None
            }
        } else {
            Some(min)
        };
        self.space(false);
        if !self.eat('}') {
            return Err(self.error("expected } after the repetition count"));
        }
        if max.is_some_and(|m| m < min) {
            return Err(self.error("repetition maximum below the minimum"));
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Result<u32, GrammarError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        digits.parse().map_err(|_| {
            self.pos = start;
            self.error("expected a repetition count (0 to 4294967295)")
        })
    }

    /// One character of a literal or class, escapes decoded.
    fn char(&mut self) -> Result<u32, GrammarError> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of text"));
        };
        self.pos += 1;
        if c != '\\' {
            return Ok(c as u32);
        }
        let Some(e) = self.peek() else {
            return Err(self.error("unexpected end of text after \\"));
        };
        self.pos += 1;
        let digits = match e {
            'n' => return Ok('\n' as u32),
            't' => return Ok('\t' as u32),
            'r' => return Ok('\r' as u32),
            '\\' | '"' | '[' | ']' | '-' | '^' => return Ok(e as u32),
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => {
                self.pos -= 2;
                return Err(self.error(&format!("unknown escape \\{e}")));
            }
        };
        let start = self.pos;
        let hex: String = self.chars[start..(start + digits).min(self.chars.len())]
            .iter()
            .collect();
        match u32::from_str_radix(&hex, 16) {
            Ok(v) if hex.len() == digits && hex.chars().all(|c| c.is_ascii_hexdigit()) && v <= 0x10_FFFF => {
                self.pos += digits;
                Ok(v)
            }
            _ => Err(self.error(&format!("\\{e} needs {digits} hex digits of a code point"))),
        }
    }
}
