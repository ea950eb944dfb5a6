//! What `check` finds wrong in an `assert`, `set` or `skip_if` expression before a card sees
//! it: operators that assign or chain instead of comparing (evalexpr parses `a = 1` and
//! `a == 1; b == 2` and fails or ignores them at run time), operators from other languages,
//! functions evalexpr does not have, and values of the wrong type (`b.card_id > 3`, bytes
//! compared with a number, `&&` over a number, an `assert` that is not a boolean).
//!
//! Variables have static types: plan variables and `for_each` values from their literals,
//! built-ins, `read` fields and captures from their definitions, `set` results from their
//! expressions. What cannot be known stays `Unknown` and is left to run time.

use evalexpr::{DefaultNumericTypes, EvalexprError, HashMapContext, Node, Operator};
use std::collections::BTreeMap;

/// The static type of a plan variable or an expression's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int,
    Float,
    /// A string: plan byte strings are upper-case hex strings.
    Str,
    Bool,
    Tuple,
    Empty,
    Unknown,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Int => "a number",
            Ty::Float => "a float",
            Ty::Str => "bytes (a string)",
            Ty::Bool => "true/false",
            Ty::Tuple => "a tuple",
            Ty::Empty => "nothing",
            Ty::Unknown => "a value",
        }
    }

    fn number(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }

    /// Can a value of this type take part where `want` says? Unknown always can.
    fn fits(self, want: fn(Ty) -> bool) -> bool {
        self == Ty::Unknown || want(self)
    }

    /// The type of a plan value.
    pub fn of(v: &super::template::Value) -> Ty {
        match v {
            super::template::Value::Int(_) => Ty::Int,
            super::template::Value::Hex(_) => Ty::Str,
        }
    }
}

/// Variables visible to a step, with their types.
pub type Env = BTreeMap<String, Ty>;

/// An error in an expression: the message, and the byte offset in the expression text it
/// points at (the start when it is about the whole expression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub at: usize,
    pub msg: String,
}

fn err<T>(at: usize, msg: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError { at, msg: msg.into() })
}

/// Operators written the way other languages or a slip of the finger write them; checked on
/// the text (outside string literals) before evalexpr sees it, since evalexpr either parses
/// them into something else (`=` assigns, `;` chains) or rejects them with a message about
/// tokens.
pub fn lint_operators(src: &str, known: &Env) -> Result<(), ExprError> {
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            // A string literal: skip to its closing quote (backslash escapes).
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_.:".contains(&b[i])) {
                i += 1;
            }
            let word = &src[start..i];
            let op = match word {
                "and" | "AND" => Some("&&"),
                "or" | "OR" => Some("||"),
                "not" | "NOT" => Some("!"),
                _ => None,
            };
            if let Some(op) = op.filter(|_| !known.contains_key(word)) {
                return err(start, format!("`{word}` is not an operator here: write `{op}`"));
            }
            continue;
        }
        let rest = &src[i..];
        let three = ["&&=", "||=", "===", "!=="];
        let two = ["==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=", "/=", "%=", "^=", "=>", "=<", "<>"];
        let tok = three
            .iter()
            .chain(two.iter())
            .find(|t| rest.starts_with(**t))
            .copied()
            .unwrap_or(&rest[..rest.chars().next().map_or(0, char::len_utf8)]);
        let msg = match tok {
            "=" => Some("`=` assigns a variable: compare with `==`".to_string()),
            "===" => Some("`===` is not an operator: compare with `==`".to_string()),
            "!==" => Some("`!==` is not an operator: compare with `!=`".to_string()),
            "=>" => Some("`=>` is not an operator: did you mean `>=`?".to_string()),
            "=<" => Some("`=<` is not an operator: did you mean `<=`?".to_string()),
            "<>" => Some("`<>` is not an operator: did you mean `!=`?".to_string()),
            "&" => Some("`&` is not an operator: did you mean `&&` (or bitand(a, b))?".to_string()),
            "|" => Some("`|` is not an operator: did you mean `||` (or bitor(a, b))?".to_string()),
            "+=" | "-=" | "*=" | "/=" | "%=" | "^=" | "&&=" | "||=" => Some(format!(
                "`{tok}` assigns a variable, which an expression cannot do: compare with `==`, or compute a new \
                 variable in a `set` step"
            )),
            ";" => Some("`;` chains expressions and keeps only the last one's value: join conditions with `&&`".into()),
            "^" => Some("`^` raises to a power and gives a float: use bitxor(a, b) for exclusive or".into()),
            _ => None,
        };
        if let Some(m) = msg {
            return err(i, m);
        }
        i += tok.len().max(1);
    }
    Ok(())
}

/// Functions evalexpr provides (with this crate's features), for "did you mean"; whether a
/// name is one is asked of evalexpr itself (`is_function`).
const FUNCTIONS: &[&str] = &[
    "min",
    "max",
    "if",
    "len",
    "contains",
    "contains_any",
    "typeof",
    "floor",
    "round",
    "ceil",
    "bitand",
    "bitor",
    "bitxor",
    "bitnot",
    "shl",
    "shr",
    "str::substring",
    "str::to_uppercase",
    "str::to_lowercase",
    "str::trim",
    "str::from",
    "math::abs",
    "math::pow",
    "math::sqrt",
    "math::ln",
    "math::log",
    "math::exp",
];

/// Does evalexpr know a function of this name? Asked by calling it with no argument in an
/// empty context: only an unknown name gives `FunctionIdentifierNotFound`.
fn is_function(name: &str) -> bool {
    let Ok(tree) = evalexpr::build_operator_tree::<DefaultNumericTypes>(&format!("{name}()")) else { return false };
    !matches!(
        tree.eval_with_context(&HashMapContext::<DefaultNumericTypes>::new()),
        Err(EvalexprError::FunctionIdentifierNotFound(_))
    )
}

/// The expression as written, for messages (evalexpr prints trees in prefix form).
fn show(n: &Node<DefaultNumericTypes>) -> String {
    let kids = n.children();
    let op = n.operator();
    let bin = |sym: &str| format!("{} {sym} {}", show_arg(&kids[0]), show_arg(&kids[1]));
    match op {
        Operator::RootNode => kids.first().map(show).unwrap_or_default(),
        Operator::Const { value } => match value {
            evalexpr::Value::String(s) => format!("\"{s}\""),
            v => v.to_string(),
        },
        Operator::VariableIdentifierRead { identifier } | Operator::VariableIdentifierWrite { identifier } => {
            identifier.clone()
        }
        Operator::FunctionIdentifier { identifier } => {
            let mut arg = kids.first();
            while let Some(a) = arg.filter(|a| matches!(a.operator(), Operator::RootNode)) {
                arg = a.children().first();
            }
            let args = arg.map(|a| match a.operator() {
                Operator::Tuple => a.children().iter().map(show).collect::<Vec<_>>().join(", "),
                _ => show(a),
            });
            format!("{identifier}({})", args.unwrap_or_default())
        }
        Operator::Neg => format!("-{}", show_arg(&kids[0])),
        Operator::Not => format!("!{}", show_arg(&kids[0])),
        Operator::Tuple => kids.iter().map(show).collect::<Vec<_>>().join(", "),
        _ if kids.len() == 2 => bin(&op.to_string()),
        _ => kids.iter().map(show).collect::<Vec<_>>().join(" "),
    }
}

fn show_arg(n: &Node<DefaultNumericTypes>) -> String {
    match n.operator() {
        Operator::Const { .. }
        | Operator::VariableIdentifierRead { .. }
        | Operator::FunctionIdentifier { .. }
        | Operator::RootNode => show(n),
        _ => format!("({})", show(n)),
    }
}

/// The type an expression evaluates to, or the first thing in it that cannot work.
pub fn infer(tree: &Node<DefaultNumericTypes>, env: &Env) -> Result<Ty, ExprError> {
    let kids = tree.children();
    let ty = |i: usize| -> Result<Ty, ExprError> { infer(&kids[i], env) };
    let here = |msg: String| -> Result<Ty, ExprError> { err(0, format!("`{}`: {msg}", show(tree))) };
    match tree.operator() {
        Operator::RootNode => match kids.len() {
            0 => Ok(Ty::Empty),
            _ => ty(0),
        },
        Operator::Const { value } => Ok(match value {
            evalexpr::Value::Int(_) => Ty::Int,
            evalexpr::Value::Float(_) => Ty::Float,
            evalexpr::Value::String(_) => Ty::Str,
            evalexpr::Value::Boolean(_) => Ty::Bool,
            evalexpr::Value::Tuple(_) => Ty::Tuple,
            evalexpr::Value::Empty => Ty::Empty,
        }),
        Operator::VariableIdentifierRead { identifier } => Ok(env.get(identifier).copied().unwrap_or(Ty::Unknown)),
        Operator::Neg => {
            let a = ty(0)?;
            if !a.fits(Ty::number) {
                return here(format!("negates {}", a.name()));
            }
            Ok(a)
        }
        Operator::Add => {
            let (a, b) = (ty(0)?, ty(1)?);
            match (a, b) {
                (Ty::Unknown, _) | (_, Ty::Unknown) => Ok(Ty::Unknown),
                (Ty::Str, Ty::Str) => Ok(Ty::Str),
                (Ty::Int, Ty::Int) => Ok(Ty::Int),
                (x, y) if x.number() && y.number() => Ok(Ty::Float),
                _ => here(format!("adds {} and {}", a.name(), b.name())),
            }
        }
        op @ (Operator::Sub | Operator::Mul | Operator::Div | Operator::Mod) => {
            let (a, b) = (ty(0)?, ty(1)?);
            for t in [a, b] {
                if !t.fits(Ty::number) {
                    return here(format!("`{op}` needs numbers, not {}", t.name()));
                }
            }
            Ok(match (a, b) {
                (Ty::Int, Ty::Int) => Ty::Int,
                (Ty::Unknown, _) | (_, Ty::Unknown) => Ty::Unknown,
                _ => Ty::Float,
            })
        }
        Operator::Exp => Ok(Ty::Float),
        op @ (Operator::Eq | Operator::Neq) => {
            let (a, b) = (ty(0)?, ty(1)?);
            let comparable = a == b || a == Ty::Unknown || b == Ty::Unknown;
            if !comparable {
                let never = if matches!(op, Operator::Eq) { "never equal" } else { "always different" };
                return here(format!("compares {} with {}: {never}", a.name(), b.name()));
            }
            Ok(Ty::Bool)
        }
        op @ (Operator::Gt | Operator::Lt | Operator::Geq | Operator::Leq) => {
            let (a, b) = (ty(0)?, ty(1)?);
            let ok = match (a, b) {
                (Ty::Unknown, x) | (x, Ty::Unknown) => x == Ty::Unknown || x.number() || x == Ty::Str,
                (Ty::Str, Ty::Str) => true,
                (x, y) => x.number() && y.number(),
            };
            if !ok {
                return here(format!("`{op}` orders {} against {}", a.name(), b.name()));
            }
            Ok(Ty::Bool)
        }
        op @ (Operator::And | Operator::Or) => {
            for kid in kids.iter().take(2) {
                let t = infer(kid, env)?;
                if !t.fits(|t| t == Ty::Bool) {
                    let how =
                        if t == Ty::Int { format!(" (compare it: `{} == 1`)", show_arg(kid)) } else { String::new() };
                    return here(format!("`{op}` joins conditions, and `{}` is {}{how}", show(kid), t.name()));
                }
            }
            Ok(Ty::Bool)
        }
        Operator::Not => {
            let t = ty(0)?;
            if !t.fits(|t| t == Ty::Bool) {
                return here(format!("`!` needs true/false, not {}", t.name()));
            }
            Ok(Ty::Bool)
        }
        Operator::Tuple => {
            for i in 0..kids.len() {
                ty(i)?;
            }
            Ok(Ty::Tuple)
        }
        Operator::FunctionIdentifier { identifier } => function(identifier, kids.first(), env, &here),
        // `lint_operators` refuses these on the text; a tree that still has one is refused here.
        Operator::Assign
        | Operator::AddAssign
        | Operator::SubAssign
        | Operator::MulAssign
        | Operator::DivAssign
        | Operator::ModAssign
        | Operator::ExpAssign
        | Operator::AndAssign
        | Operator::OrAssign
        | Operator::VariableIdentifierWrite { .. } => here("assigns a variable: compare with `==`".into()),
        Operator::Chain => here("`;` keeps only the last expression's value: join conditions with `&&`".into()),
    }
}

fn function(
    name: &str,
    arg: Option<&Node<DefaultNumericTypes>>,
    env: &Env,
    here: &dyn Fn(String) -> Result<Ty, ExprError>,
) -> Result<Ty, ExprError> {
    if !is_function(name) {
        let known: Vec<&str> = FUNCTIONS.iter().copied().filter(|f| is_function(f)).collect();
        return err(0, format!("unknown function '{name}'{}", crate::suggest::hint(name, known, "")));
    }
    // Parentheses are root nodes in evalexpr's tree: look through them for the argument tuple.
    let mut arg = arg;
    while let Some(a) = arg.filter(|a| matches!(a.operator(), Operator::RootNode)) {
        arg = a.children().first();
    }
    let args: Vec<Ty> = match arg {
        None => vec![],
        Some(a) if matches!(a.operator(), Operator::Tuple) => {
            a.children().iter().map(|c| infer(c, env)).collect::<Result<_, _>>()?
        }
        Some(a) => vec![infer(a, env)?],
    };
    let need = |n: usize, want: &[fn(Ty) -> bool], what: &str| -> Result<(), ExprError> {
        if args.len() != n {
            return here(format!("{name} takes {n} argument{}", if n == 1 { "" } else { "s" })).map(|_| ());
        }
        for (t, w) in args.iter().zip(want) {
            if !t.fits(*w) {
                return here(format!("{name} takes {what}, not {}", t.name())).map(|_| ());
            }
        }
        Ok(())
    };
    let int = |t: Ty| t == Ty::Int;
    let string = |t: Ty| t == Ty::Str;
    let boolean = |t: Ty| t == Ty::Bool;
    Ok(match name {
        "len" => {
            need(1, &[|t| t == Ty::Str || t == Ty::Tuple], "bytes (a string)")?;
            Ty::Int
        }
        "str::substring" => {
            need(3, &[string, int, int], "bytes and two character offsets")?;
            Ty::Str
        }
        "str::to_uppercase" | "str::to_lowercase" | "str::trim" => {
            need(1, &[string], "bytes (a string)")?;
            Ty::Str
        }
        "str::from" | "typeof" => Ty::Str,
        "bitand" | "bitor" | "bitxor" | "shl" | "shr" => {
            need(2, &[int, int], "two integers")?;
            Ty::Int
        }
        "bitnot" => {
            need(1, &[int], "an integer")?;
            Ty::Int
        }
        "min" | "max" => {
            if args.iter().any(|t| !t.fits(Ty::number)) {
                return here(format!("{name} takes numbers"));
            }
            if args.iter().all(|t| *t == Ty::Int) {
                Ty::Int
            } else {
                Ty::Unknown
            }
        }
        "if" => {
            if args.len() != 3 {
                return here("if takes a condition and two values: if(cond, a, b)".into());
            }
            if !args[0].fits(boolean) {
                return here(format!("if's condition is {}, not true/false", args[0].name()));
            }
            if args[1] == args[2] {
                args[1]
            } else {
                Ty::Unknown
            }
        }
        "contains" | "contains_any" => Ty::Bool,
        n if n.starts_with("math::is_") => Ty::Bool,
        _ => Ty::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        [("n", Ty::Int), ("b.card_id", Ty::Str), ("b.counter", Ty::Int)]
            .into_iter()
            .map(|(k, t)| (k.to_string(), t))
            .collect()
    }

    fn ty(src: &str) -> Result<Ty, ExprError> {
        lint_operators(src, &env())?;
        infer(&evalexpr::build_operator_tree(src).unwrap(), &env())
    }

    #[test]
    fn assignment_and_look_alike_operators_are_refused_where_written() {
        assert_eq!(ty("b.counter = 3").unwrap_err().at, 10);
        assert!(ty("b.counter = 3").unwrap_err().msg.contains("`==`"));
        assert_eq!(ty("n == 1; n == 2").unwrap_err().at, 6);
        assert_eq!(ty("n => 1").unwrap_err().msg, "`=>` is not an operator: did you mean `>=`?");
        assert!(ty("n += 1").unwrap_err().msg.starts_with("`+=` assigns"));
        assert!(ty("n == 1 and n == 2").unwrap_err().msg.contains("`&&`"));
        assert!(ty("n == 1 & n == 2").unwrap_err().msg.contains("`&&`"));
        // Inside a string literal an `=` is text.
        assert_eq!(ty("b.card_id == \"a=b\"").unwrap(), Ty::Bool);
        assert_eq!(ty("n <= 1 && n >= 0 || n != 3").unwrap(), Ty::Bool);
    }

    #[test]
    fn types_that_cannot_work_are_refused() {
        assert!(ty("b.card_id > 3").unwrap_err().msg.contains("orders bytes"));
        assert!(ty("b.counter == b.card_id").unwrap_err().msg.contains("never equal"));
        assert!(ty("n && n == 1").unwrap_err().msg.contains("joins conditions"));
        assert!(ty("lenn(b.card_id) == 16").unwrap_err().msg.contains("did you mean len?"));
        assert!(ty("len(n) == 2").unwrap_err().msg.contains("len takes"));
        assert_eq!(ty("b.counter - 1").unwrap(), Ty::Int);
        assert_eq!(ty("str::substring(b.card_id, 0, 4) + b.card_id").unwrap(), Ty::Str);
        assert_eq!(ty("if(n > 1, 2, 3) == 2").unwrap(), Ty::Bool);
    }
}
