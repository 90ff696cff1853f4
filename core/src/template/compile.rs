//! Compiling a template: the parsed JSON document becomes a tree of [`Node`]s whose strings are
//! split into text and checked placeholders ([`Field`]), so that rendering never parses and
//! never fails on a placeholder.
//!
//! Guarantees: every placeholder is known and well formed once compiled; a template holds at
//! most [`MAX_PLACEHOLDERS`] of them; subtrees without placeholders are kept as one literal
//! value; object keys are kept verbatim and in the order of the parsed document.

use serde_json::Value;

use super::MAX_PLACEHOLDERS;

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Field {
    Id,
    Type,
    Timestamp,
    Source,
    Stream,
    Version,
    Position,
    Tenant,
    Event,
    /// A path into the data; empty for the whole data.
    Data(Vec<String>),
    /// A path into the metadata; empty for the whole metadata.
    Metadata(Vec<String>),
}

impl Field {
    /// Reads the text between `{{` and `}}` (already trimmed).
    fn parse(name: &str) -> std::result::Result<Field, String> {
        if name.is_empty() {
            return Err("empty placeholder \"{{}}\"".to_owned());
        }
        let (head, path) = match name.split_once('.') {
            Some((head, path)) => (head, Some(path)),
            None => (name, None),
        };
        let simple = match head {
            "id" => Some(Field::Id),
            "type" => Some(Field::Type),
            "timestamp" => Some(Field::Timestamp),
            "source" => Some(Field::Source),
            "stream" => Some(Field::Stream),
            "version" => Some(Field::Version),
            "position" => Some(Field::Position),
            "tenant" => Some(Field::Tenant),
            "event" => Some(Field::Event),
            "data" | "metadata" => None,
            _ => return Err(format!("unknown placeholder {}", quoted(name))),
        };
        if let Some(simple) = simple {
            return match path {
                None => Ok(simple),
                Some(_) => Err(format!("placeholder {}: only data and metadata take a path", quoted(name))),
            };
        }
        let mut segments = Vec::new();
        if let Some(path) = path {
            for segment in path.split('.') {
                if segment.is_empty() || segment.contains(['{', '}']) {
                    return Err(format!("placeholder {}: invalid path", quoted(name)));
                }
                segments.push(segment.to_owned());
            }
        }
        Ok(if head == "data" { Field::Data(segments) } else { Field::Metadata(segments) })
    }
}

/// `{{name}}` quoted for an error message, the name cut to 64 characters.
fn quoted(name: &str) -> String {
    const MAX_CHARS: usize = 64;
    match name.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("\"{{{{{}…}}}}\"", &name[..cut]),
        None => format!("\"{{{{{name}}}}}\""),
    }
}

/// Follows `path` from `root`: object keys by name, array elements by decimal index.
pub(super) fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut current = root;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => {
                if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                items.get(segment.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(current)
}

/// One piece of an interpolated string.
#[derive(Debug, Clone)]
pub(super) enum Part {
    Text(String),
    Placeholder(Field),
}

/// A compiled template node.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// Output as is (no placeholder inside).
    Literal(Value),
    /// A string that is exactly one placeholder: the typed value (null when missing).
    Whole(Field),
    /// A string mixing text and placeholders: stays a string.
    Interpolated(Vec<Part>),
    Array(Vec<Node>),
    /// Keys are verbatim, in the parsed document's order.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// Compiles a parsed template, counting its placeholders into `placeholders`.
    pub(super) fn compile(value: Value, placeholders: &mut usize) -> std::result::Result<Node, String> {
        Ok(match value {
            Value::String(text) => Node::compile_string(text, placeholders)?,
            Value::Array(items) => {
                let nodes = items
                    .into_iter()
                    .map(|item| Node::compile(item, placeholders))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                    Node::Literal(Value::Array(nodes.into_iter().map(Node::into_literal).collect()))
                } else {
                    Node::Array(nodes)
                }
            }
            Value::Object(map) => {
                let entries = map
                    .into_iter()
                    .map(|(key, item)| Ok((key, Node::compile(item, placeholders)?)))
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                if entries.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                    Node::Literal(Value::Object(entries.into_iter().map(|(k, n)| (k, n.into_literal())).collect()))
                } else {
                    Node::Object(entries)
                }
            }
            scalar => Node::Literal(scalar),
        })
    }

    fn compile_string(text: String, placeholders: &mut usize) -> std::result::Result<Node, String> {
        let mut parts = split_placeholders(&text)?;
        let found = parts.iter().filter(|p| matches!(p, Part::Placeholder(_))).count();
        *placeholders += found;
        if *placeholders > MAX_PLACEHOLDERS {
            return Err(format!("more than {MAX_PLACEHOLDERS} placeholders"));
        }
        Ok(if found == 0 {
            Node::Literal(Value::String(text))
        } else if parts.len() == 1 {
            match parts.pop() {
                Some(Part::Placeholder(source)) => Node::Whole(source),
                _ => Node::Literal(Value::String(text)),
            }
        } else {
            Node::Interpolated(parts)
        })
    }

    /// The value of a node known to be a literal.
    fn into_literal(self) -> Value {
        match self {
            Node::Literal(value) => value,
            _ => Value::Null,
        }
    }
}

/// Splits a template string into text and placeholders.
fn split_placeholders(text: &str) -> std::result::Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unterminated \"{{\" (a placeholder is closed with \"}}\")".to_owned());
        };
        parts.push(Part::Placeholder(Field::parse(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}
