//! Config errors: every one names the field path, the reason and, for TOML, the line.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted field path, e.g. `routes[3].nexthop` (empty for the document itself).
    pub path: String,
    /// What is wrong, in words.
    pub reason: String,
    /// 1-based line in the TOML source, when known.
    pub line: Option<usize>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            self.path.as_str()
        };
        write!(f, "{path}: {}", self.reason)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or does not match the schema (unknown field, wrong type,
    /// missing field). Parsing stops at the first such error.
    #[error("{}{error}", file_prefix(.file))]
    Parse {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// The error.
        error: FieldError,
    },
    /// The config parsed but is inconsistent; all problems are listed.
    #[error("{}{}", file_prefix(.file), list(.errors))]
    Invalid {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// Every problem found.
        errors: Vec<FieldError>,
    },
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    match file {
        Some(p) => format!("{}: ", p.display()),
        None => String::new(),
    }
}

fn list(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} errors:", many.len());
            for e in many {
                s.push_str("\n  ");
                s.push_str(&e.to_string());
            }
            s
        }
    }
}

impl ConfigError {
    /// Attaches the file name to a parse or validation error.
    pub fn in_file(self, path: &std::path::Path) -> ConfigError {
        match self {
            ConfigError::Parse { error, .. } => ConfigError::Parse {
                file: Some(path.to_path_buf()),
                error,
            },
            ConfigError::Invalid { errors, .. } => ConfigError::Invalid {
                file: Some(path.to_path_buf()),
                errors,
            },
            other => other,
        }
    }

    /// The field errors (empty for I/O errors).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Parse { error, .. } => std::slice::from_ref(error),
            ConfigError::Invalid { errors, .. } => errors,
        }
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A field path under construction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// The path with one more key.
    pub fn key(&self, k: &str) -> FieldPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        FieldPath(v)
    }

    /// The path with one more index.
    pub fn index(&self, i: usize) -> FieldPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        FieldPath(v)
    }

    /// Parses a rendered path (`a.b[2].c`) back into segments.
    pub fn parse(s: &str) -> FieldPath {
        let mut v = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(i) = rest.find('[') {
                if i > 0 {
                    v.push(Seg::Key(rest[..i].to_string()));
                }
                rest = &rest[i..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let Some(end) = stripped.find(']') else { break };
                    if let Ok(n) = stripped[..end].parse() {
                        v.push(Seg::Index(n));
                    }
                    rest = &stripped[end + 1..];
                }
            } else {
                v.push(Seg::Key(rest.to_string()));
            }
        }
        FieldPath(v)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            match s {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_render_and_parse() {
        let p = FieldPath::default().key("routes").index(3).key("nexthop");
        assert_eq!(p.to_string(), "routes[3].nexthop");
        assert_eq!(FieldPath::parse("routes[3].nexthop"), p);
        assert_eq!(
            FieldPath::parse("ports[0].vf.pf").to_string(),
            "ports[0].vf.pf"
        );
    }

    #[test]
    fn error_messages() {
        let e = FieldError {
            path: "cores.control".into(),
            reason: "bad".into(),
            line: Some(4),
        };
        assert_eq!(e.to_string(), "cores.control: bad (line 4)");
        let many = ConfigError::Invalid {
            file: None,
            errors: vec![e.clone(), e],
        };
        assert_eq!(
            many.to_string(),
            "2 errors:\n  cores.control: bad (line 4)\n  cores.control: bad (line 4)"
        );
    }
}
