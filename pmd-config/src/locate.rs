//! Maps between field paths and positions in a TOML source, so that every error can
//! say `line N` and every TOML parse error can name its field path.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Value};

use crate::error::{FieldPath, Seg};

/// A parsed TOML document that keeps the spans of its keys and values.
pub struct Locator<'a> {
    src: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    /// Parses `src` for locating (a malformed document locates nothing).
    pub fn new(src: &'a str) -> Self {
        Locator {
            src,
            doc: ImDocument::parse(src).ok(),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(self.src, offset)
    }

    /// The 1-based line of the field at `path`, or of its deepest existing parent.
    pub fn line_of_path(&self, path: &FieldPath) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        descend(doc.as_item(), &path.0).map(|s| self.line_of(s.start))
    }

    /// The field path of the deepest key or value whose span contains `offset`.
    pub fn path_at(&self, offset: usize) -> FieldPath {
        let Some(doc) = self.doc.as_ref() else {
            return FieldPath::default();
        };
        let mut out = FieldPath::default();
        search_item(doc.as_item(), offset, &mut FieldPath::default(), &mut out);
        out
    }
}

/// Span of the deepest existing element along `segs` below `item`.
fn descend(item: &Item, segs: &[Seg]) -> Option<Range<usize>> {
    let (seg, tail) = segs.split_first()?;
    match (seg, item) {
        (Seg::Key(k), _) => {
            let t = item.as_table_like()?;
            let (key, it) = t.get_key_value(k)?;
            let here = key.span().or_else(|| it.span());
            descend(it, tail).or(here)
        }
        (Seg::Index(i), Item::ArrayOfTables(a)) => {
            let t = a.get(*i)?;
            let here = t.span();
            let deeper = match tail.split_first() {
                Some((Seg::Key(k), tail2)) => t.get_key_value(k).and_then(|(key, it)| {
                    descend(it, tail2)
                        .or_else(|| key.span())
                        .or_else(|| it.span())
                }),
                _ => None,
            };
            deeper.or(here)
        }
        (Seg::Index(i), Item::Value(Value::Array(a))) => {
            let v = a.get(*i)?;
            descend_value(v, tail).or_else(|| v.span())
        }
        _ => None,
    }
}

fn descend_value(v: &Value, segs: &[Seg]) -> Option<Range<usize>> {
    let (seg, tail) = segs.split_first()?;
    match (seg, v) {
        (Seg::Key(k), Value::InlineTable(t)) => {
            let (key, it) = t.get_key_value(k)?;
            let here = key.span().or_else(|| it.span());
            descend(it, tail).or(here)
        }
        (Seg::Index(i), Value::Array(a)) => {
            let v2 = a.get(*i)?;
            descend_value(v2, tail).or_else(|| v2.span())
        }
        _ => None,
    }
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn search_item(item: &Item, offset: usize, here: &mut FieldPath, out: &mut FieldPath) {
    match item {
        Item::Table(t) => {
            if contains(t.span(), offset) && here.0.len() >= out.0.len() {
                *out = here.clone();
            }
            for (k, _) in t.iter() {
                if let Some((key, it)) = t.get_key_value(k) {
                    search_kv(k, key.span(), it, offset, here, out);
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let mut p = here.index(i);
                if contains(t.span(), offset) && p.0.len() >= out.0.len() {
                    *out = p.clone();
                }
                for (k, _) in t.iter() {
                    if let Some((key, it)) = t.get_key_value(k) {
                        search_kv(k, key.span(), it, offset, &mut p, out);
                    }
                }
            }
        }
        Item::Value(v) => search_value(v, offset, here, out),
        Item::None => {}
    }
}

fn search_kv(
    k: &str,
    key_span: Option<Range<usize>>,
    it: &Item,
    offset: usize,
    here: &mut FieldPath,
    out: &mut FieldPath,
) {
    let mut p = here.key(k);
    if (contains(key_span, offset) || contains(it.span(), offset)) && p.0.len() >= out.0.len() {
        *out = p.clone();
    }
    search_item(it, offset, &mut p, out);
}

fn search_value(v: &Value, offset: usize, here: &mut FieldPath, out: &mut FieldPath) {
    match v {
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let mut p = here.index(i);
                if contains(e.span(), offset) && p.0.len() >= out.0.len() {
                    *out = p.clone();
                }
                search_value(e, offset, &mut p, out);
            }
        }
        Value::InlineTable(t) => {
            for (k, _) in t.iter() {
                if let Some((key, it)) = t.get_key_value(k) {
                    search_kv(k, key.span(), it, offset, here, out);
                }
            }
        }
        _ => {}
    }
}

/// 1-based line number of byte `offset` in `src`.
pub fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "log_level = \"info\"\n\
[cores]\n\
workers = [1, 2]\n\
control = 0\n\
\n\
[[ports]]\n\
name = \"a\"\n\
vdev = \"net_null0\"\n\
\n\
[[ports]]\n\
name = \"b\"\n\
vf = { pf = \"0000:3b:00.0\", index = 1 }\n";

    #[test]
    fn lines_of_paths() {
        let l = Locator::new(SRC);
        assert_eq!(l.line_of_path(&FieldPath::parse("log_level")), Some(1));
        assert_eq!(l.line_of_path(&FieldPath::parse("cores.control")), Some(4));
        assert_eq!(
            l.line_of_path(&FieldPath::parse("cores.workers[1]")),
            Some(3)
        );
        assert_eq!(l.line_of_path(&FieldPath::parse("ports[1].name")), Some(11));
        assert_eq!(
            l.line_of_path(&FieldPath::parse("ports[1].vf.index")),
            Some(12)
        );
        // A missing field falls back to its parent.
        assert_eq!(l.line_of_path(&FieldPath::parse("ports[0].mtu")), Some(6));
    }

    #[test]
    fn paths_of_offsets() {
        let l = Locator::new(SRC);
        let off = SRC.find("index").unwrap();
        assert_eq!(l.path_at(off).to_string(), "ports[1].vf.index");
        let off = SRC.find("control").unwrap();
        assert_eq!(l.path_at(off).to_string(), "cores.control");
    }
}
