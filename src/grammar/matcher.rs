//! The recognizer: llama.cpp's set of parse stacks over code points, each stack a chain of
//! nodes in an arena (pushing shares the rest of the stack), with a per-vocabulary mask that
//! walks the sorted tokens and reuses the work of their shared prefixes.

use std::fmt;
use std::sync::Arc;

use super::GrammarError;
use super::compile::{Elem, Grammar};
use super::vocab::TokenTable;

/// No node: the bottom of a stack; as a stack of a set, the empty stack (the text may end).
const NONE: u32 = u32::MAX;
/// Most stacks in one set: more means a grammar too ambiguous to follow.
const MAX_STACKS: usize = 1024;
/// Most expansion steps for one character (all stacks together).
const MAX_STEPS: usize = 1 << 16;
/// Most live nodes.
const MAX_NODES: usize = 1 << 22;

/// One stack entry: a position in [`Grammar::elems`] and the entry below it.
#[derive(Clone, Copy, Debug)]
struct Node {
    pos: u32,
    parent: u32,
}

/// The set of stacks got too large, or expanding it took too many steps.
#[derive(Debug)]
struct Overflow;

/// A partly read UTF-8 character: bits so far and continuation bytes still to come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Utf8 {
    bits: u32,
    missing: u8,
    /// Smallest code point of the character's length (longer encodings are invalid).
    min: u32,
}

/// What a byte does to a partly read character.
enum Byte {
    Char(u32),
    Partial(Utf8),
    Invalid,
}

impl Utf8 {
    fn push(self, b: u8) -> Byte {
        if self.missing == 0 {
            let (bits, missing, min) = match b {
                0x00..=0x7f => return Byte::Char(u32::from(b)),
                0xc2..=0xdf => (b & 0x1f, 1, 0x80),
                0xe0..=0xef => (b & 0x0f, 2, 0x800),
                0xf0..=0xf4 => (b & 0x07, 3, 0x1_0000),
                _ => return Byte::Invalid,
            };
            return Byte::Partial(Utf8 {
                bits: u32::from(bits),
                missing,
                min,
            });
        }
        if b & 0xc0 != 0x80 {
            return Byte::Invalid;
        }
        let bits = self.bits << 6 | u32::from(b & 0x3f);
        match self.missing - 1 {
            0 if (self.min..=0x10_FFFF).contains(&bits) && !(0xd800..0xe000).contains(&bits) => {
                Byte::Char(bits)
            }
            0 => Byte::Invalid,
            missing => Byte::Partial(Utf8 {
                bits,
                missing,
                ..self
            }),
        }
    }

    /// The code points this partial character can still become.
    fn range(self) -> (u32, u32) {
        let shift = 6 * u32::from(self.missing);
        let lo = self.bits << shift;
        (lo.max(self.min), (lo | ((1 << shift) - 1)).min(0x10_FFFF))
    }
}

/// A set of stacks: a range of the `sets` buffer, the partial character read after it, and
/// how far the buffers reached when it was made.
#[derive(Clone, Copy, Debug)]
struct Level {
    start: u32,
    len: u32,
    utf8: Utf8,
    /// Reached from the committed set by characters it loops on: it is that set.
    root: bool,
    sets_end: u32,
    nodes_end: u32,
}

/// Follows one generation through a grammar: masks the logits of tokens that cannot come next
/// and advances on the token chosen. Allocates when created and while its buffers grow to the
/// grammar's needs, not per token after that.
#[derive(Clone)]
pub struct GrammarMatcher {
    grammar: Arc<Grammar>,
    table: Arc<TokenTable>,
    nodes: Vec<Node>,
    /// The committed set of stacks: node ids of their tops, `NONE` for the empty stack.
    stacks: Vec<u32>,
    /// A character the last token started but did not finish.
    partial: Utf8,
    // Work buffers.
    sets: Vec<u32>,
    levels: Vec<Level>,
    work: Vec<u32>,
    remap: Vec<u32>,
    spare: Vec<Node>,
}

impl fmt::Debug for GrammarMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrammarMatcher")
            .field("stacks", &self.stacks.len())
            .field("complete", &self.is_complete())
            .finish_non_exhaustive()
    }
}

impl GrammarMatcher {
    /// A matcher at the start of `grammar`, for the vocabulary of `table`.
    pub fn new(grammar: Arc<Grammar>, table: Arc<TokenTable>) -> GrammarMatcher {
        let mut m = GrammarMatcher {
            grammar,
            table,
            nodes: Vec::new(),
            stacks: Vec::new(),
            partial: Utf8::default(),
            sets: Vec::new(),
            levels: Vec::new(),
            work: Vec::new(),
            remap: Vec::new(),
            spare: Vec::new(),
        };
        m.reset();
        m
    }

    /// Back to the start of the grammar.
    pub fn reset(&mut self) {
        self.nodes.clear();
        self.stacks.clear();
        self.partial = Utf8::default();
        let g = &self.grammar;
        self.nodes.push(Node {
            pos: g.start,
            parent: NONE,
        });
        // The root rule's expansion cannot overflow by more than a grammar error would show
        // later; on overflow the matcher is stuck and masks everything.
        if advance(g, &mut self.nodes, &mut self.work, 0, &mut self.stacks, 0, &mut 0).is_err() {
            self.stacks.clear();
        }
    }

    /// Whether the text so far is complete: the grammar may end here.
    pub fn is_complete(&self) -> bool {
        self.partial.missing == 0 && self.stacks.contains(&NONE)
    }

    /// Sets the logits of tokens that cannot come next to negative infinity: special and
    /// control tokens always, end-of-sequence and end-of-turn tokens unless the text is
    /// complete. Only the grammar decides; no other logit changes.
    pub fn mask(&mut self, logits: &mut [f32]) {
        let table = Arc::clone(&self.table);
        let complete = self.is_complete();
        for (id, l) in logits.iter_mut().enumerate() {
            let id = id as u32;
            let allowed = table.is_text(id) || (complete && table.is_stop(id));
            if !allowed {
                *l = f32::NEG_INFINITY;
            }
        }
        let committed = self.nodes.len();
        self.start_levels();
        let loops = if self.partial.missing == 0 {
            self.loop_chars()
        } else {
            [0; 2]
        };
        // Tokens in byte order; `shared` is how long a prefix the current token shares with
        // the last one walked, whose first `valid` levels are computed and whose first `dead`
        // bytes (when set) no token can start with.
        let (mut valid, mut dead, mut shared) = (1usize, usize::MAX, usize::MAX);
        for (i, id) in table.sorted_ids().enumerate() {
            shared = shared.min(table.lcp(i));
            // Characters the committed set loops on lead back to it: nothing to walk.
            if table.within(i, &loops) {
                continue;
            }
            let allowed = if shared >= dead {
                false
            } else {
                let bytes = table.sorted_bytes(i);
                let from = (valid - 1).min(shared);
                self.levels.truncate(from + 1);
                let lv = self.levels[from];
                self.sets.truncate(lv.sets_end as usize);
                self.nodes.truncate(lv.nodes_end as usize);
                let mut ok = true;
                for (j, &b) in bytes.iter().enumerate().skip(from) {
                    match self.step(self.levels[j], b, &loops) {
                        Some(next) => self.levels.push(next),
                        None => {
                            dead = j + 1;
                            valid = j + 1;
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    dead = usize::MAX;
                    valid = bytes.len() + 1;
                }
                shared = usize::MAX;
                ok
            };
            if !allowed && let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        self.levels.clear();
        self.sets.clear();
        self.nodes.truncate(committed);
    }

    /// Advances over `token`; an error (a token the grammar does not allow here, or a grammar
    /// too ambiguous to follow) leaves the matcher as it was.
    pub fn accept(&mut self, token: u32) -> Result<(), GrammarError> {
        let table = Arc::clone(&self.table);
        if table.is_stop(token) {
            return match self.is_complete() {
                true => Ok(()),
                false => Err(GrammarError::Rejected(format!(
                    "end-of-turn token {token} before the grammar is complete"
                ))),
            };
        }
        let Some(bytes) = table.bytes(token) else {
            return Err(GrammarError::Rejected(format!(
                "token {token} is a special token or outside the vocabulary"
            )));
        };
        let committed = self.nodes.len();
        self.start_levels();
        let mut ok = true;
        for (j, &b) in bytes.iter().enumerate() {
            match self.step(self.levels[j], b, &[0; 2]) {
                Some(next) => self.levels.push(next),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        let last = *self.levels.last().expect("level 0 is there");
        if ok {
            self.stacks.clear();
            self.stacks
                .extend_from_slice(&self.sets[last.start as usize..(last.start + last.len) as usize]);
            self.partial = last.utf8;
            self.compact();
        } else {
            self.nodes.truncate(committed);
        }
        self.levels.clear();
        self.sets.clear();
        match ok {
            true => Ok(()),
            false => Err(GrammarError::Rejected(format!(
                "token {token} ({:?}) does not fit the grammar here, or the grammar is too ambiguous \
                 (more than {MAX_STACKS} parses at once)",
                String::from_utf8_lossy(bytes)
            ))),
        }
    }

    /// A token that ends generation: for when the grammar leaves nothing to sample.
    pub fn fallback_token(&self) -> u32 {
        self.table.fallback_token()
    }

    /// Level 0: the committed stacks.
    fn start_levels(&mut self) {
        self.levels.clear();
        self.sets.clear();
        self.sets.extend_from_slice(&self.stacks);
        self.levels.push(Level {
            start: 0,
            len: self.stacks.len() as u32,
            utf8: self.partial,
            root: true,
            sets_end: self.sets.len() as u32,
            nodes_end: self.nodes.len() as u32,
        });
    }

    /// The ASCII characters after which the committed set is the same set again (a string's
    /// ordinary characters, say): the mask skips the work for them.
    fn loop_chars(&mut self) -> [u64; 2] {
        let root = self.levels[0];
        let mut loops = [0u64; 2];
        for c in 0..128u32 {
            let Ok(next) = self.accept_char(root, c) else {
                continue;
            };
            if next.len == root.len && self.same_sets(root, next) {
                loops[(c / 64) as usize] |= 1 << (c % 64);
            }
            self.sets.truncate(root.sets_end as usize);
            self.nodes.truncate(root.nodes_end as usize);
        }
        loops
    }

    fn same_sets(&self, a: Level, b: Level) -> bool {
        let set = |l: Level| &self.sets[l.start as usize..(l.start + l.len) as usize];
        set(a)
            .iter()
            .all(|&x| set(b).iter().any(|&y| same_stack(&self.nodes, x, y)))
    }

    /// The level after byte `b`, or `None` when no stack can take it.
    fn step(&mut self, lv: Level, b: u8, loops: &[u64; 2]) -> Option<Level> {
        match lv.utf8.push(b) {
            Byte::Invalid => None,
            Byte::Partial(utf8) => {
                let (lo, hi) = utf8.range();
                let g = &self.grammar;
                let possible = self.sets[lv.start as usize..(lv.start + lv.len) as usize]
                    .iter()
                    .any(|&n| n != NONE && top_class(g, &self.nodes, n).intersects(lo, hi));
                possible.then_some(Level {
                    utf8,
                    root: false,
                    ..lv
                })
            }
            Byte::Char(c) if lv.root && c < 128 && loops[(c / 64) as usize] & (1 << (c % 64)) != 0 => {
                Some(Level {
                    utf8: Utf8::default(),
                    ..lv
                })
            }
            Byte::Char(c) => {
                let next = self.accept_char(lv, c).ok()?;
                (next.len > 0).then_some(next)
            }
        }
    }

    /// The set after character `c` from set `lv`, appended to `sets`.
    fn accept_char(&mut self, lv: Level, c: u32) -> Result<Level, Overflow> {
        let g = &self.grammar;
        let start = self.sets.len();
        let mut steps = 0;
        for i in lv.start..lv.start + lv.len {
            let n = self.sets[i as usize];
            if n == NONE || !top_class(g, &self.nodes, n).contains(c) {
                continue;
            }
            let Node { pos, parent } = self.nodes[n as usize];
            let from = if g.elems[pos as usize + 1] == Elem::End {
                parent
            } else {
                new_node(&mut self.nodes, pos + 1, parent)?
            };
            advance(
                g,
                &mut self.nodes,
                &mut self.work,
                from,
                &mut self.sets,
                start,
                &mut steps,
            )?;
        }
        Ok(Level {
            start: start as u32,
            len: (self.sets.len() - start) as u32,
            utf8: Utf8::default(),
            root: false,
            sets_end: self.sets.len() as u32,
            nodes_end: self.nodes.len() as u32,
        })
    }

    /// Copies the committed stacks' nodes into a fresh arena (dropping dead ones), keeping
    /// shared tails shared.
    fn compact(&mut self) {
        self.remap.clear();
        self.remap.resize(self.nodes.len(), NONE);
        self.spare.clear();
        for s in self.stacks.iter_mut() {
            if *s == NONE {
                continue;
            }
            self.work.clear();
            let mut n = *s;
            while n != NONE && self.remap[n as usize] == NONE {
                self.work.push(n);
                n = self.nodes[n as usize].parent;
            }
            let mut parent = if n == NONE { NONE } else { self.remap[n as usize] };
            while let Some(m) = self.work.pop() {
                self.spare.push(Node {
                    pos: self.nodes[m as usize].pos,
                    parent,
                });
                parent = (self.spare.len() - 1) as u32;
                self.remap[m as usize] = parent;
            }
            *s = self.remap[*s as usize];
        }
        std::mem::swap(&mut self.nodes, &mut self.spare);
    }
}

fn top_class<'g>(g: &'g Grammar, nodes: &[Node], n: u32) -> &'g super::compile::Class {
    match g.elems[nodes[n as usize].pos as usize] {
        Elem::Chars(c) => &g.classes[c as usize],
        _ => unreachable!("stack tops are characters"),
    }
}

fn new_node(nodes: &mut Vec<Node>, pos: u32, parent: u32) -> Result<u32, Overflow> {
    if nodes.len() >= MAX_NODES {
        return Err(Overflow);
    }
    nodes.push(Node { pos, parent });
    Ok((nodes.len() - 1) as u32)
}

/// Whether stacks `a` and `b` hold the same positions.
fn same_stack(nodes: &[Node], mut a: u32, mut b: u32) -> bool {
    while a != b {
        if a == NONE || b == NONE || nodes[a as usize].pos != nodes[b as usize].pos {
            return false;
        }
        a = nodes[a as usize].parent;
        b = nodes[b as usize].parent;
    }
    true
}

/// Expands the stack `from` until every top is a character (or the stack is empty), adding
/// the stacks not already in `out[start..]`.
fn advance(
    g: &Grammar,
    nodes: &mut Vec<Node>,
    work: &mut Vec<u32>,
    from: u32,
    out: &mut Vec<u32>,
    start: usize,
    steps: &mut usize,
) -> Result<(), Overflow> {
    work.clear();
    work.push(from);
    while let Some(n) = work.pop() {
        *steps += 1;
        if *steps > MAX_STEPS {
            return Err(Overflow);
        }
        let elem = if n == NONE {
            Elem::End
        } else {
            g.elems[nodes[n as usize].pos as usize]
        };
        match elem {
            Elem::Rule(r) => {
                let Node { pos, parent } = nodes[n as usize];
                let cont = if g.elems[pos as usize + 1] == Elem::End {
                    parent
                } else {
                    new_node(nodes, pos + 1, parent)?
                };
                for &alt in g.alts(r).iter().rev() {
                    work.push(match g.elems[alt as usize] {
                        Elem::End => cont,
                        _ => new_node(nodes, alt, cont)?,
                    });
                }
            }
            // A character on top, or the empty stack.
            _ => {
                if !out[start..].iter().any(|&m| same_stack(nodes, m, n)) {
                    if out.len() - start >= MAX_STACKS {
                        return Err(Overflow);
                    }
                    out.push(n);
                }
            }
        }
    }
    Ok(())
}
