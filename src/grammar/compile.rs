//! Parsed rules into the flat form the matcher walks (as llama.cpp's `llama_grammar`): every
//! alternative is a run of elements ending in `End`; groups and repetitions become generated
//! rules; left recursion and oversized grammars are rejected here.

use std::collections::HashMap;

use super::GrammarError;
use super::parse::{Expr, RuleDef, line_column, parse};

/// Most elements in a compiled grammar (repetition counts expand into copies).
const MAX_ELEMS: usize = 1 << 20;

/// One element of an alternative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    /// One character of class `classes[i]`.
    Chars(u32),
    /// Rule `i`.
    Rule(u32),
    /// End of the alternative.
    End,
}

/// A set of code points: ranges, possibly negated; ASCII as a bitmap for speed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Class {
    negated: bool,
    ranges: Vec<(u32, u32)>,
    ascii: [u64; 2],
}

impl Class {
    fn new(negated: bool, ranges: Vec<(u32, u32)>) -> Class {
        let mut ascii = [0u64; 2];
        for c in 0..128u32 {
            if ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != negated {
                ascii[(c / 64) as usize] |= 1 << (c % 64);
            }
        }
        Class {
            negated,
            ranges,
            ascii,
        }
    }

    /// Whether code point `c` is in the class.
    pub(crate) fn contains(&self, c: u32) -> bool {
        if c < 128 {
            self.ascii[(c / 64) as usize] & (1 << (c % 64)) != 0
        } else {
            self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != self.negated
        }
    }

    /// Whether some code point in `lo..=hi` is in the class.
    pub(crate) fn intersects(&self, lo: u32, hi: u32) -> bool {
        if !self.negated {
            return self.ranges.iter().any(|&(a, b)| a <= hi && b >= lo);
        }
        // Negated: some point of lo..=hi is outside every range.
        let mut c = lo;
        while let Some(&(_, b)) = self.ranges.iter().find(|&&(a, b)| (a..=b).contains(&c)) {
            if b >= hi {
                return false;
            }
            c = b + 1;
        }
        true
    }
}

/// A compiled grammar: share it between requests with an `Arc`.
#[derive(Clone, Debug)]
pub struct Grammar {
    pub(crate) elems: Vec<Elem>,
    /// Per rule, the range of `alt_starts` holding its alternatives.
    rules: Vec<(u32, u32)>,
    alt_starts: Vec<u32>,
    pub(crate) classes: Vec<Class>,
    /// Position of `[Rule(root), End]`, where matching starts.
    pub(crate) start: u32,
}

impl Grammar {
    /// Parses llama.cpp's GBNF; the grammar starts at the rule named `root`.
    pub fn parse(gbnf: &str) -> Result<Grammar, GrammarError> {
        let defs = parse(gbnf)?;
        Builder::default().build(gbnf, defs)
    }

    /// The start positions of rule `r`'s alternatives.
    pub(crate) fn alts(&self, r: u32) -> &[u32] {
        let (from, n) = self.rules[r as usize];
        &self.alt_starts[from as usize..(from + n) as usize]
    }
}

#[derive(Default)]
struct Builder {
    /// Alternatives of each rule, as element sequences (without `End`).
    rules: Vec<Vec<Vec<Elem>>>,
    names: Vec<String>,
    ids: HashMap<String, u32>,
    /// The rules made for groups and repetitions, in order.
    generated: Vec<u32>,
    classes: Vec<Class>,
    class_ids: HashMap<Class, u32>,
    size: usize,
}

impl Builder {
    fn build(mut self, text: &str, defs: Vec<RuleDef>) -> Result<Grammar, GrammarError> {
        let chars: Vec<char> = text.chars().collect();
        let at = |pos: usize, message: String| {
            let (line, column) = line_column(&chars, pos);
            GrammarError::Parse {
                line,
                column,
                message,
            }
        };
        for d in &defs {
            if self.ids.contains_key(&d.name) {
                return Err(at(d.at, format!("rule {} is defined twice", d.name)));
            }
            let id = self.new_rule(&d.name);
            self.ids.insert(d.name.clone(), id);
        }
        let Some(&root) = self.ids.get("root") else {
            return Err(GrammarError::Invalid("no rule named root".into()));
        };
        for (r, d) in defs.iter().enumerate() {
            let alts = self.alternatives(&d.alts).map_err(|(pos, m)| match pos {
                Some(pos) => at(pos, m),
                None => GrammarError::Invalid(m),
            })?;
            self.rules[r] = alts;
        }
        self.check_left_recursion()?;
        Ok(self.flatten(root))
    }

    /// A new rule; its name is only for messages (references are resolved through `ids`).
    fn new_rule(&mut self, name: &str) -> u32 {
        let id = self.rules.len() as u32;
        self.rules.push(Vec::new());
        self.names.push(name.to_string());
        id
    }

    /// A generated rule named after `base`.
    fn aux_rule(&mut self, base: &str, alts: Vec<Vec<Elem>>) -> u32 {
        let name = format!("{base}_{}", self.rules.len());
        let id = self.new_rule(&name);
        self.generated.push(id);
        self.rules[id as usize] = alts;
        id
    }

    fn grow(&mut self, n: usize) -> Result<(), (Option<usize>, String)> {
        self.size += n;
        if self.size > MAX_ELEMS {
            return Err((
                None,
                format!("grammar too large: more than {MAX_ELEMS} elements after expanding repetitions"),
            ));
        }
        Ok(())
    }

    fn class(&mut self, negated: bool, ranges: Vec<(u32, u32)>) -> Elem {
        let class = Class::new(negated, ranges);
        let next = self.classes.len() as u32;
        let id = *self.class_ids.entry(class.clone()).or_insert(next);
        if id == next {
            self.classes.push(class);
        }
        Elem::Chars(id)
    }

    fn alternatives(&mut self, alts: &[Vec<Expr>]) -> Result<Vec<Vec<Elem>>, (Option<usize>, String)> {
        let mut out = Vec::with_capacity(alts.len());
        for seq in alts {
            let mut elems = Vec::new();
            for e in seq {
                self.expr(e, &mut elems)?;
            }
            self.grow(elems.len() + 1)?;
            out.push(elems);
        }
        Ok(out)
    }

    fn expr(&mut self, e: &Expr, out: &mut Vec<Elem>) -> Result<(), (Option<usize>, String)> {
        match e {
            Expr::Literal(chars) => {
                for &c in chars {
                    let class = self.class(false, vec![(c, c)]);
                    out.push(class);
                }
            }
            Expr::Class { negated, ranges } => {
                let class = self.class(*negated, ranges.clone());
                out.push(class);
            }
            Expr::Ref(name, pos) => match self.ids.get(name) {
                Some(&id) => out.push(Elem::Rule(id)),
                None => return Err((Some(*pos), format!("undefined rule {name}"))),
            },
            Expr::Group(alts) => {
                let alts = self.alternatives(alts)?;
                let id = self.aux_rule("group", alts);
                out.push(Elem::Rule(id));
            }
            Expr::Repeat(item, min, max) => self.repeat(item, *min, *max, out)?,
        }
        Ok(())
    }

    /// `item{min,max}`: `min` copies, then `max - min` nested optional copies (`x (x (x)?)?`)
    /// or a right-recursive star (`s ::= x s |`).
    fn repeat(
        &mut self,
        item: &Expr,
        min: u32,
        max: Option<u32>,
        out: &mut Vec<Elem>,
    ) -> Result<(), (Option<usize>, String)> {
        let copies = max.unwrap_or(min).max(min) as usize;
        self.grow(copies + 2)?;
        let mut one = Vec::new();
        self.expr(item, &mut one)?;
        let one = match one.as_slice() {
            [single] => *single,
            _ => Elem::Rule(self.aux_rule("item", vec![one])),
        };
        out.extend(std::iter::repeat_n(one, min as usize));
        match max {
            None => {
                let id = self.aux_rule("star", Vec::new());
                self.rules[id as usize] = vec![vec![one, Elem::Rule(id)], Vec::new()];
                out.push(Elem::Rule(id));
            }
            Some(max) if max > min => {
                let mut tail = self.aux_rule("opt", vec![vec![one], Vec::new()]);
                for _ in min + 1..max {
                    tail = self.aux_rule("opt", vec![vec![one, Elem::Rule(tail)], Vec::new()]);
                }
                out.push(Elem::Rule(tail));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Rejects rules that can reach themselves without consuming a character (the matcher
    /// would expand them forever).
    fn check_left_recursion(&self) -> Result<(), GrammarError> {
        let n = self.rules.len();
        // Nullable rules, to a fixed point.
        let mut nullable = vec![false; n];
        let mut changed = true;
        while changed {
            changed = false;
            for r in 0..n {
                if !nullable[r]
                    && self.rules[r].iter().any(|alt| {
                        alt.iter()
                            .all(|e| matches!(e, Elem::Rule(s) if nullable[*s as usize]))
                    })
                {
                    nullable[r] = true;
                    changed = true;
                }
            }
        }
        // The rules each rule can start with.
        let left: Vec<Vec<u32>> = self
            .rules
            .iter()
            .map(|alts| {
                let mut edges = Vec::new();
                for alt in alts {
                    for e in alt {
                        match *e {
                            Elem::Rule(s) => {
                                edges.push(s);
                                if !nullable[s as usize] {
                                    break;
                                }
                            }
                            _ => break,
                        }
                    }
                }
                edges
            })
            .collect();
        // Iterative depth-first search for a cycle: 0 new, 1 on the path, 2 done.
        let mut state = vec![0u8; n];
        let mut path: Vec<(u32, usize)> = Vec::new();
        for r in 0..n as u32 {
            if state[r as usize] != 0 {
                continue;
            }
            state[r as usize] = 1;
            path.push((r, 0));
            while let Some((node, i)) = path.last_mut() {
                let node = *node;
                match left[node as usize].get(*i) {
                    Some(&next) => {
                        *i += 1;
                        match state[next as usize] {
                            0 => {
                                state[next as usize] = 1;
                                path.push((next, 0));
                            }
                            1 => {
                                let user = path
                                    .iter()
                                    .map(|&(r, _)| r)
                                    .find(|r| !self.generated.contains(r))
                                    .unwrap_or(next);
                                return Err(GrammarError::Invalid(format!(
                                    "left recursion: rule {} can reach itself without consuming a character",
                                    self.names[user as usize]
                                )));
                            }
                            _ => {}
                        }
                    }
                    None => {
                        state[node as usize] = 2;
                        path.pop();
                    }
                }
            }
        }
        Ok(())
    }

    fn flatten(self, root: u32) -> Grammar {
        let mut elems = Vec::with_capacity(self.size + 2);
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut alt_starts = Vec::new();
        for alts in &self.rules {
            rules.push((alt_starts.len() as u32, alts.len() as u32));
            for alt in alts {
                alt_starts.push(elems.len() as u32);
                elems.extend_from_slice(alt);
                elems.push(Elem::End);
            }
        }
        let start = elems.len() as u32;
        elems.extend([Elem::Rule(root), Elem::End]);
        Grammar {
            elems,
            rules,
            alt_starts,
            classes: self.classes,
            start,
        }
    }
}
