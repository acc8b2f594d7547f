//! A small backtracking regular-expression matcher for Nova's `name`/`ip` filters
//! (Python `re.search` semantics over the subset clients use: literals, `.`, classes,
//! `\d \w \s` and their negations, anchors, groups, alternation and greedy or lazy
//! `* + ? {m,n}` quantifiers).

#[derive(Clone, Debug)]
enum Node {
    Char(char),
    Any,
    Class(Vec<ClassItem>, bool),
    Start,
    End,
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, usize, Option<usize>, bool),
}

#[derive(Clone, Debug)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

pub struct Regex {
    alts: Vec<Vec<Node>>,
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn alternation(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alts = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.sequence()?);
        }
        Ok(alts)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, String> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantifier(atom)?;
            seq.push(atom);
        }
        Ok(seq)
    }

    fn quantifier(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let rest: String = self.s[self.i + 1..].iter().collect();
                let Some(end) = rest.find('}') else {
                    return Ok(atom);
                };
                let body = &rest[..end];
                let parsed = match body.split_once(',') {
                    None => body.parse::<usize>().ok().map(|n| (n, Some(n))),
                    Some((a, "")) => a.parse::<usize>().ok().map(|n| (n, None)),
                    Some((a, b)) => a
                        .parse::<usize>()
                        .ok()
                        .zip(b.parse::<usize>().ok())
                        .map(|(a, b)| (a, Some(b))),
                };
                let Some((a, b)) = parsed else {
                    return Ok(atom);
                };
                self.i += end + 1;
                (a, b)
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        if matches!(atom, Node::Start | Node::End) {
            return Err("nothing to repeat".into());
        }
        let lazy = self.peek() == Some('?');
        if lazy {
            self.i += 1;
        }
        Ok(Node::Repeat(Box::new(atom), min, max, lazy))
    }

    fn escape(&mut self, in_class: bool) -> Result<ClassItem, String> {
        let c = self.peek().ok_or("bad escape (end of pattern)")?;
        self.i += 1;
        Ok(match c {
            'd' => ClassItem::Digit(true),
            'D' => ClassItem::Digit(false),
            'w' => ClassItem::Word(true),
            'W' => ClassItem::Word(false),
            's' => ClassItem::Space(true),
            'S' => ClassItem::Space(false),
            'n' => ClassItem::Range('\n', '\n'),
            't' => ClassItem::Range('\t', '\t'),
            c if c.is_ascii_alphanumeric() && !in_class => return Err(format!("bad escape \\{c}")),
            c => ClassItem::Range(c, c),
        })
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self.peek().ok_or("unexpected end of pattern")?;
        self.i += 1;
        Ok(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.s[self.i..].starts_with(&['?', ':']) {
                    self.i += 2;
                }
                let alts = self.alternation()?;
                if self.peek() != Some(')') {
                    return Err("missing ), unterminated subpattern".into());
                }
                self.i += 1;
                Node::Group(alts)
            }
            ')' => return Err("unbalanced parenthesis".into()),
            '*' | '+' | '?' => return Err("nothing to repeat".into()),
            '[' => {
                let negated = self.peek() == Some('^');
                if negated {
                    self.i += 1;
                }
                let mut items = Vec::new();
                let mut first = true;
                loop {
                    let c = self.peek().ok_or("unterminated character set")?;
                    self.i += 1;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let item = if c == '\\' {
                        self.escape(true)?
                    } else {
                        ClassItem::Range(c, c)
                    };
                    if let ClassItem::Range(lo, _) = item
                        && self.peek() == Some('-')
                        && self.s.get(self.i + 1).is_some_and(|n| *n != ']')
                    {
                        self.i += 1;
                        let hi = self.peek().ok_or("unterminated character set")?;
                        self.i += 1;
                        if hi < lo {
                            return Err("bad character range".into());
                        }
                        items.push(ClassItem::Range(lo, hi));
                        continue;
                    }
                    items.push(item);
                }
                Node::Class(items, negated)
            }
            '\\' => match self.escape(false)? {
                ClassItem::Range(a, _) => Node::Char(a),
                other => Node::Class(vec![other], false),
            },
            c => Node::Char(c),
        })
    }
}

fn class_hit(items: &[ClassItem], c: char) -> bool {
    items.iter().any(|i| match i {
        ClassItem::Range(a, b) => *a <= c && c <= *b,
        ClassItem::Digit(p) => c.is_ascii_digit() == *p,
        ClassItem::Word(p) => (c.is_alphanumeric() || c == '_') == *p,
        ClassItem::Space(p) => c.is_whitespace() == *p,
    })
}

fn match_seq(seq: &[Node], pos: usize, s: &[char], k: &mut dyn FnMut(usize) -> bool) -> bool {
    match seq.split_first() {
        None => k(pos),
        Some((n, rest)) => match_node(n, pos, s, &mut |p| match_seq(rest, p, s, k)),
    }
}

fn match_node(n: &Node, pos: usize, s: &[char], k: &mut dyn FnMut(usize) -> bool) -> bool {
    match n {
        Node::Char(c) => pos < s.len() && s[pos] == *c && k(pos + 1),
        Node::Any => pos < s.len() && s[pos] != '\n' && k(pos + 1),
        Node::Class(items, neg) => pos < s.len() && class_hit(items, s[pos]) != *neg && k(pos + 1),
        Node::Start => pos == 0 && k(pos),
        Node::End => (pos == s.len() || (pos + 1 == s.len() && s[pos] == '\n')) && k(pos),
        Node::Group(alts) => alts.iter().any(|a| match_seq(a, pos, s, k)),
        Node::Repeat(inner, min, max, lazy) => repeat(inner, *min, *max, *lazy, 0, pos, s, k),
    }
}

#[allow(clippy::too_many_arguments)]
fn repeat(
    inner: &Node,
    min: usize,
    max: Option<usize>,
    lazy: bool,
    count: usize,
    pos: usize,
    s: &[char],
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    let can_more = max.is_none_or(|m| count < m);
    if lazy && count >= min && k(pos) {
        return true;
    }
    if can_more
        && match_node(inner, pos, s, &mut |p| {
            if p == pos && count >= min {
                return false;
            }
            repeat(inner, min, max, lazy, count + 1, p, s, k)
        })
    {
        return true;
    }
    !lazy && count >= min && k(pos)
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        let alts = p.alternation()?;
        if p.i != chars.len() {
            return Err("unbalanced parenthesis".into());
        }
        Ok(Regex { alts })
    }

    /// Python's `re.search`: a match anywhere in the text.
    pub fn is_match(&self, text: &str) -> bool {
        let s: Vec<char> = text.chars().collect();
        (0..=s.len()).any(|start| {
            self.alts
                .iter()
                .any(|a| match_seq(a, start, &s, &mut |_| true))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).expect("pattern").is_match(t)
    }

    #[test]
    fn search_semantics() {
        assert!(m("web", "my-web-01"));
        assert!(!m("^web", "my-web-01"));
        assert!(m("^my-web-\\d+$", "my-web-01"));
        assert!(!m("^my-web-\\d+$", "my-web-0x"));
        assert!(m("a(b|c)+d", "xxabcbd"));
        assert!(m("[a-c]{2,3}z", "bbz"));
        assert!(!m("[^a-c]z", "bz"));
        assert!(m("10\\.0\\.0\\.", "10.0.0.5"));
        assert!(m("x.*?y", "x123y"));
        assert!(m("", "anything"));
        assert!(Regex::new("(").is_err());
        assert!(Regex::new("*a").is_err());
    }
}
