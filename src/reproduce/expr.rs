//! A claim's value as arithmetic over evaluations: `a - b`, `(a - b) / (c -
//! d)`, `max(a, b)`, `seconds(model)`. Names hold hyphens (`adversarial-pgd40`),
//! so a minus between two names needs spaces around it. Written here rather
//! than taken from an expression crate because those read `a-b` as a
//! subtraction and know nothing of which names are evaluations or models.

use crate::error::{Error, Result};

/// A parsed value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    /// An evaluation's value.
    Evaluation(String),
    /// A model's training time in seconds.
    Seconds(String),
    Min(Vec<Expr>),
    Max(Vec<Expr>),
    Negate(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Subtract,
    Multiply,
    Divide,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Symbol(char),
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let literal: String = chars[start..i].iter().collect();
            let number = literal
                .parse()
                .map_err(|_| Error::invalid(format!("{literal:?} is not a number")))?;
            tokens.push(Token::Number(number));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | '_' | '.')) {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else if "+-*/(),".contains(c) {
            tokens.push(Token::Symbol(c));
            i += 1;
        } else {
            return Err(Error::invalid(format!(
                "unexpected {c:?}; a value is built from evaluation names, numbers, + - * / ( ), \
                 min(...), max(...) and seconds(model)"
            )));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Parentheses, calls and minus signs open around the current token.
    depth: usize,
}

/// The longest value expression, in characters, and its deepest nesting:
/// parsing, evaluating and dropping an expression recurse over its tree,
/// so both bound the stack it takes.
pub const MAX_TEXT: usize = 1_000;
pub const MAX_DEPTH: usize = 32;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat(&mut self, symbol: char) -> bool {
        if self.peek() == Some(&Token::Symbol(symbol)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, symbol: char) -> Result<()> {
        if self.eat(symbol) {
            Ok(())
        } else {
            Err(Error::invalid(format!("expected `{symbol}`")))
        }
    }

    fn sum(&mut self) -> Result<Expr> {
        let mut left = self.product()?;
        loop {
            let op = if self.eat('+') {
                Op::Add
            } else if self.eat('-') {
                Op::Subtract
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr> {
        let mut left = self.factor()?;
        loop {
            let op = if self.eat('*') {
                Op::Multiply
            } else if self.eat('/') {
                Op::Divide
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.factor()?));
        }
    }

    fn factor(&mut self) -> Result<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::invalid(format!(
                "the value nests parentheses, calls or minus signs more than {MAX_DEPTH} deep"
            )));
        }
        let factor = self.factor_inner();
        self.depth -= 1;
        factor
    }

    fn factor_inner(&mut self) -> Result<Expr> {
        match self.next() {
            Some(Token::Number(n)) => Ok(Expr::Number(n)),
            Some(Token::Symbol('-')) => Ok(Expr::Negate(Box::new(self.factor()?))),
            Some(Token::Symbol('(')) => {
                let inner = self.sum()?;
                self.expect(')')?;
                Ok(inner)
            }
            Some(Token::Name(name)) if self.eat('(') => self.call(name),
            Some(Token::Name(name)) => Ok(Expr::Evaluation(name)),
            Some(Token::Symbol(c)) => Err(Error::invalid(format!("unexpected `{c}`"))),
            None => Err(Error::invalid("the value ends too early")),
        }
    }

    fn call(&mut self, function: String) -> Result<Expr> {
        let mut args = vec![self.sum()?];
        while self.eat(',') {
            args.push(self.sum()?);
        }
        self.expect(')')?;
        match function.as_str() {
            "min" => Ok(Expr::Min(args)),
            "max" => Ok(Expr::Max(args)),
            "seconds" => match args.as_slice() {
                [Expr::Evaluation(model)] => Ok(Expr::Seconds(model.clone())),
                _ => Err(Error::invalid("`seconds` takes one model name")),
            },
            other => Err(Error::invalid(format!(
                "no function `{other}`; there are min, max and seconds"
            ))),
        }
    }
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr> {
        if text.chars().count() > MAX_TEXT {
            return Err(Error::invalid(format!(
                "the value is longer than {MAX_TEXT} characters"
            )));
        }
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
            depth: 0,
        };
        let expr = parser.sum()?;
        match parser.peek() {
            None => Ok(expr),
            Some(token) => Err(Error::invalid(format!(
                "unexpected {} (a minus between names needs spaces around it)",
                match token {
                    Token::Number(n) => n.to_string(),
                    Token::Name(n) => format!("`{n}`"),
                    Token::Symbol(c) => format!("`{c}`"),
                }
            ))),
        }
    }

    /// Every name it reads: (evaluations, models).
    pub fn names(&self) -> (Vec<&str>, Vec<&str>) {
        let (mut evaluations, mut models) = (Vec::new(), Vec::new());
        self.collect(&mut evaluations, &mut models);
        (evaluations, models)
    }

    fn collect<'a>(&'a self, evaluations: &mut Vec<&'a str>, models: &mut Vec<&'a str>) {
        match self {
            Expr::Number(_) => {}
            Expr::Evaluation(name) => evaluations.push(name),
            Expr::Seconds(name) => models.push(name),
            Expr::Min(args) | Expr::Max(args) => args.iter().for_each(|a| a.collect(evaluations, models)),
            Expr::Negate(inner) => inner.collect(evaluations, models),
            Expr::Binary(_, left, right) => {
                left.collect(evaluations, models);
                right.collect(evaluations, models);
            }
        }
    }

    /// Its value, with `evaluation` and `seconds` looking names up (both
    /// checked beforehand). Division by zero gives a non-finite value, which
    /// no bound admits.
    pub fn value(&self, evaluation: &dyn Fn(&str) -> f64, seconds: &dyn Fn(&str) -> f64) -> f64 {
        let eval = |e: &Expr| e.value(evaluation, seconds);
        match self {
            Expr::Number(n) => *n,
            Expr::Evaluation(name) => evaluation(name),
            Expr::Seconds(name) => seconds(name),
            Expr::Min(args) => args.iter().map(eval).fold(f64::INFINITY, f64::min),
            Expr::Max(args) => args.iter().map(eval).fold(f64::NEG_INFINITY, f64::max),
            Expr::Negate(inner) => -eval(inner),
            Expr::Binary(op, left, right) => {
                let (a, b) = (eval(left), eval(right));
                match op {
                    Op::Add => a + b,
                    Op::Subtract => a - b,
                    Op::Multiply => a * b,
                    Op::Divide => a / b,
                }
            }
        }
    }

    /// The range a share-valued expression can take (an evaluation is in
    /// [0, 1], a difference of two in [-1, 1], ...); `None` for ratios,
    /// products and times, which are not shares.
    pub fn share_range(&self) -> Option<(f64, f64)> {
        match self {
            Expr::Evaluation(_) => Some((0.0, 1.0)),
            Expr::Min(args) | Expr::Max(args) => args.iter().try_fold((f64::INFINITY, f64::NEG_INFINITY), |acc, a| {
                let (low, high) = a.share_range()?;
                Some((acc.0.min(low), acc.1.max(high)))
            }),
            Expr::Negate(inner) => inner.share_range().map(|(low, high)| (-high, -low)),
            Expr::Binary(Op::Add, left, right) => {
                let ((a, b), (c, d)) = (left.share_range()?, right.share_range()?);
                Some((a + c, b + d))
            }
            Expr::Binary(Op::Subtract, left, right) => {
                let ((a, b), (c, d)) = (left.share_range()?, right.share_range()?);
                Some((a - d, b - c))
            }
            _ => None,
        }
    }

    /// Whether the value is a share (printed as a percentage).
    pub fn is_share(&self) -> bool {
        self.share_range().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> f64 {
        let lookup = |name: &str| match name {
            "a-b" => 0.9,
            "c" => 0.4,
            _ => 0.1,
        };
        Expr::parse(text).unwrap().value(&lookup, &|_| 100.0)
    }

    #[test]
    fn deep_or_long_values_are_refused_not_overflowed() {
        let deep = format!("{}c{}", "(".repeat(100), ")".repeat(100));
        assert!(Expr::parse(&deep).unwrap_err().to_string().contains("deep"));
        let negated = format!("{}c", "-".repeat(100));
        assert!(Expr::parse(&negated).is_err());
        let long = vec!["c"; 600].join(" + ");
        assert!(Expr::parse(&long).unwrap_err().to_string().contains("longer"));
        let fine = format!("{}c{}", "(".repeat(20), ")".repeat(20));
        assert!(Expr::parse(&fine).is_ok());
    }

    #[test]
    fn names_keep_their_hyphens_and_arithmetic_follows_precedence() {
        assert!((value("a-b - c") - 0.5).abs() < 1e-12);
        assert!((value("(a-b - c) / (a-b - d)") - 0.625).abs() < 1e-12);
        assert!((value("a-b - 2 * c") - 0.1).abs() < 1e-12);
        assert!((value("max(c, d) - min(a-b, c)")).abs() < 1e-12);
        assert!((value("seconds(early) / seconds(pgd)") - 1.0).abs() < 1e-12);
        assert!((value("-c + 1") - 0.6).abs() < 1e-12);
        let parsed = Expr::parse("seconds(m) - a-b").unwrap();
        let (evaluations, models) = parsed.names();
        assert_eq!((evaluations, models), (vec!["a-b"], vec!["m"]));
    }

    #[test]
    fn shares_print_as_shares_and_ratios_do_not() {
        assert_eq!(Expr::parse("a - max(b, c)").unwrap().share_range(), Some((-1.0, 1.0)));
        assert_eq!(Expr::parse("min(a, b)").unwrap().share_range(), Some((0.0, 1.0)));
        assert!(!Expr::parse("a / b").unwrap().is_share());
        assert!(!Expr::parse("seconds(a)").unwrap().is_share());
    }

    #[test]
    fn bad_values_are_errors_that_say_why() {
        let err = |text: &str| Expr::parse(text).unwrap_err().to_string();
        assert!(err("a b").contains("spaces"), "{}", err("a b"));
        assert!(err("a +").contains("ends too early"));
        assert!(err("avg(a)").contains("no function `avg`"));
        assert!(err("seconds(1)").contains("one model name"));
        assert!(err("a % b").contains("unexpected '%'"));
        assert!(err("(a").contains("expected `)`"));
    }
}
