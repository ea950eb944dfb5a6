//! Variables, APDU templates (`80D0000008 ${amount:u32} ${now:u32}`) and expressions
//! (`after.counter == before.counter - 1`, evaluated by evalexpr).

use evalexpr::{ContextWithMutableVariables, DefaultNumericTypes, HashMapContext, Node};
use std::collections::BTreeMap;

/// A plan variable: an integer or a hex byte string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Hex(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Hex(h) => write!(f, "{h}"),
        }
    }
}

pub type Vars = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var { name: String, width: Option<usize> },
}

/// Hex with `${name}` / `${name:u8|u16|u32}` substitutions; `X` nibbles allowed in masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse; `allow_x` admits `X` wildcard nibbles (data masks). Spaces and colons are
    /// ignored so hex can be grouped for reading.
    pub fn parse(src: &str, allow_x: bool) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("${") {
                let end = after.find('}').ok_or_else(|| format!("unclosed '${{' in '{src}'"))?;
                let inner = &after[..end];
                let (name, width) = match inner.split_once(':') {
                    Some((n, "u8")) => (n, Some(1)),
                    Some((n, "u16")) => (n, Some(2)),
                    Some((n, "u32")) => (n, Some(4)),
                    Some((_, w)) => return Err(format!("unknown width ':{w}' (u8, u16 or u32)")),
                    None => (inner, None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                    return Err(format!("bad variable name '{name}'"));
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var { name: name.to_string(), width });
                rest = &after[end + 1..];
                continue;
            }
            match c {
                ' ' | ':' | '\t' | '\n' => {}
                c if c.is_ascii_hexdigit() => lit.push(c.to_ascii_uppercase()),
                'X' | 'x' if allow_x => lit.push('X'),
                c => return Err(format!("'{c}' is not a hex digit{}", if allow_x { " or X" } else { "" })),
            }
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let t = Template { parts };
        // Odd literal nibbles are only wrong if no variable can fix them, and variables always
        // render whole bytes, so the literal nibble count must be even.
        let nibbles: usize = t.parts.iter().map(|p| if let Part::Lit(l) = p { l.len() } else { 0 }).sum();
        if !nibbles.is_multiple_of(2) {
            return Err(format!("odd number of hex digits in '{src}'"));
        }
        Ok(t)
    }

    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| if let Part::Var { name, .. } = p { Some(name.as_str()) } else { None })
    }

    /// The rendered length in bytes when it does not depend on a variable's value (literals
    /// and numbers with a width); `None` when a byte-string variable is in it.
    pub fn fixed_len(&self) -> Option<usize> {
        self.parts.iter().try_fold(0, |n, p| match p {
            Part::Lit(l) => Some(n + l.len() / 2),
            Part::Var { width: Some(w), .. } => Some(n + w),
            Part::Var { width: None, .. } => None,
        })
    }

    /// Each substitution with whether it has a width (`${n:u32}` renders a number, `${b}`
    /// bytes as they are).
    pub fn substitutions(&self) -> impl Iterator<Item = (&str, bool)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { name, width } => Some((name.as_str(), width.is_some())),
            Part::Lit(_) => None,
        })
    }

    /// Upper-case hex (with X wildcards if the template had them).
    pub fn render(&self, vars: &Vars) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var { name, width } => match (vars.get(name), width) {
                    (None, _) => return Err(format!("variable '{name}' is not set")),
                    (Some(Value::Hex(h)), None) => out.push_str(&h.to_uppercase()),
                    (Some(Value::Hex(_)), Some(_)) => return Err(format!("'{name}' is bytes, not a number")),
                    (Some(Value::Int(_)), None) => {
                        return Err(format!("number '{name}' needs a width: ${{{name}:u8|u16|u32}}"))
                    }
                    (Some(Value::Int(i)), Some(w)) => {
                        let max = (1i128 << (8 * w)) - 1;
                        if (*i as i128) < 0 || (*i as i128) > max {
                            return Err(format!("'{name}' = {i} does not fit in {w} bytes"));
                        }
                        out.push_str(&format!("{:0width$X}", i, width = 2 * w));
                    }
                },
            }
        }
        Ok(out)
    }

    pub fn render_bytes(&self, vars: &Vars) -> Result<Vec<u8>, String> {
        let h = self.render(vars)?;
        hex::decode(&h).map_err(|e| format!("{h}: {e}"))
    }
}

/// Does `data` match a rendered mask (hex with X wildcard nibbles)?
pub fn mask_matches(mask: &str, data: &[u8]) -> bool {
    let actual = hex::encode_upper(data);
    mask.len() == actual.len() && mask.chars().zip(actual.chars()).all(|(m, a)| m == 'X' || m == a)
}

/// A boolean or arithmetic expression over plan variables.
#[derive(Debug, Clone)]
pub struct Expr {
    pub src: String,
    tree: Node<DefaultNumericTypes>,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}
impl Eq for Expr {}

impl Expr {
    pub fn parse(src: &str) -> Result<Expr, String> {
        let tree = evalexpr::build_operator_tree::<DefaultNumericTypes>(src).map_err(|e| e.to_string())?;
        Ok(Expr { src: src.to_string(), tree })
    }

    /// The parsed tree, for static checks (`expr_check`).
    pub(crate) fn tree(&self) -> &Node<DefaultNumericTypes> {
        &self.tree
    }

    pub fn variables(&self) -> Vec<String> {
        self.tree.iter_variable_identifiers().map(|s| s.to_string()).collect()
    }

    fn context(vars: &Vars) -> HashMapContext<DefaultNumericTypes> {
        let mut c = HashMapContext::<DefaultNumericTypes>::new();
        for (k, v) in vars {
            let v = match v {
                Value::Int(i) => evalexpr::Value::Int(*i),
                Value::Hex(h) => evalexpr::Value::String(h.to_uppercase()),
            };
            // Names were validated at parse time; a rejected one simply stays unset.
            let _ = c.set_value(k.clone(), v);
        }
        c
    }

    pub fn eval(&self, vars: &Vars) -> Result<Value, String> {
        match self.tree.eval_with_context(&Self::context(vars)).map_err(|e| e.to_string())? {
            evalexpr::Value::Int(i) => Ok(Value::Int(i)),
            evalexpr::Value::Boolean(b) => Ok(Value::Int(i64::from(b))),
            evalexpr::Value::String(s) => Ok(Value::Hex(s)),
            other => Err(format!("'{}' gives {other:?}, not a number, boolean or hex string", self.src)),
        }
    }

    pub fn eval_bool(&self, vars: &Vars) -> Result<bool, String> {
        match self.tree.eval_with_context(&Self::context(vars)).map_err(|e| e.to_string())? {
            evalexpr::Value::Boolean(b) => Ok(b),
            other => Err(format!("'{}' gives {other:?}, not true or false", self.src)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_numbers_with_width_and_hex_as_is() {
        let t = Template::parse("80 D0 0000 08 ${amount:u32} ${date:u32}", false).unwrap();
        let mut v = Vars::new();
        v.insert("amount".into(), Value::Int(0x1388));
        v.insert("date".into(), Value::Int(1));
        assert_eq!(t.render(&v).unwrap(), "80D00000080000138800000001");
        let t = Template::parse("${id} XX", true).unwrap();
        v.insert("id".into(), Value::Hex("cb01".into()));
        assert_eq!(t.render(&v).unwrap(), "CB01XX");
        assert!(mask_matches("CB01XX", &[0xCB, 0x01, 0x77]));
        assert!(!mask_matches("CB01XX", &[0xCB, 0x02, 0x77]));
        assert!(!mask_matches("CB01", &[0xCB, 0x01, 0x77]));
    }

    #[test]
    fn template_errors_name_the_problem() {
        assert!(Template::parse("80 G0", false).unwrap_err().contains("'G'"));
        assert!(Template::parse("800", false).unwrap_err().contains("odd"));
        assert!(Template::parse("${a:u64}", false).unwrap_err().contains("u64"));
        assert!(Template::parse("XX", false).is_err());
        let t = Template::parse("${a:u8}", false).unwrap();
        let mut v = Vars::new();
        v.insert("a".into(), Value::Int(256));
        assert!(t.render(&v).unwrap_err().contains("does not fit"));
    }

    #[test]
    fn expressions_see_dotted_variables() {
        let mut v = Vars::new();
        v.insert("before.counter".into(), Value::Int(10));
        v.insert("after.counter".into(), Value::Int(9));
        let e = Expr::parse("after.counter == before.counter - 1").unwrap();
        assert!(e.eval_bool(&v).unwrap());
        assert_eq!(e.variables().len(), 2);
        assert!(Expr::parse("a == (b").is_err());
    }
}
