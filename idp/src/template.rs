//! Texts with `{name}` placeholders (the one-time code messages), parsed and checked when the
//! configuration loads so that a typo is a start-up error, not a broken message at login.
//!
//! Placeholders are `{code}`, `{company}` and `{minutes}`; `{{` and `}}` stand for literal braces.

use serde::{Deserialize, Serialize};

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The one-time code.
    Code,
    /// The company (tenant) name.
    Company,
    /// How many minutes the code stays valid.
    Minutes,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        match name {
            "code" => Some(Var::Code),
            "company" => Some(Var::Company),
            "minutes" => Some(Var::Minutes),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template; serialises back to its source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// The values of one message.
pub struct Values<'a> {
    /// The one-time code.
    pub code: &'a str,
    /// The company name.
    pub company: &'a str,
    /// Minutes of validity.
    pub minutes: u64,
}

impl Template {
    /// Parses `source`; unknown placeholders and unmatched braces are errors.
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let rest = chars.as_str();
                    if let Some(after) = rest.strip_prefix('{') {
                        text.push('{');
                        chars = after.chars();
                        continue;
                    }
                    let Some((name, after)) = rest.split_once('}') else {
                        return Err("`{` without a closing `}` (write `{{` for a brace)".into());
                    };
                    let var = Var::parse(name).ok_or_else(|| {
                        format!("unknown placeholder `{{{name}}}`: use {{code}}, {{company}} or {{minutes}}")
                    })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Var(var));
                    chars = after.chars();
                }
                '}' => {
                    let rest = chars.as_str();
                    let Some(after) = rest.strip_prefix('}') else {
                        return Err("`}` without an opening `{` (write `}}` for a brace)".into());
                    };
                    text.push('}');
                    chars = after.chars();
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// Whether the template inserts `var`.
    #[must_use]
    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// The text with `values` inserted.
    #[must_use]
    pub fn render(&self, values: &Values<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::Code) => out.push_str(values.code),
                Part::Var(Var::Company) => out.push_str(values.company),
                Part::Var(Var::Minutes) => out.push_str(&values.minutes.to_string()),
            }
        }
        out
    }
}

impl TryFrom<String> for Template {
    type Error = String;

    fn try_from(source: String) -> Result<Template, String> {
        Template::parse(&source)
    }
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: Values<'static> = Values {
        code: "012345",
        company: "Acme",
        minutes: 2,
    };

    #[test]
    fn placeholders_are_replaced_and_braces_escaped() {
        let t = Template::parse("{company} code {code} ({minutes} min) {{literal}}").unwrap();
        assert_eq!(t.render(&VALUES), "Acme code 012345 (2 min) {literal}");
        assert!(t.uses(Var::Code));
        let plain = Template::parse("no placeholders").unwrap();
        assert_eq!(plain.render(&VALUES), "no placeholders");
        assert!(!plain.uses(Var::Code));
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        let e = Template::parse("your {cod}").unwrap_err();
        assert!(e.contains("unknown placeholder `{cod}`"), "{e}");
        assert!(
            Template::parse("open {code")
                .unwrap_err()
                .contains("closing")
        );
        assert!(
            Template::parse("stray } here")
                .unwrap_err()
                .contains("opening")
        );
    }

    #[test]
    fn it_serialises_back_to_its_source() {
        let t = Template::parse("{code} is it {{x}}").unwrap();
        assert_eq!(String::from(t.clone()), "{code} is it {{x}}");
        let back: Template = serde_json::from_str("\"{code} is it {{x}}\"").unwrap();
        assert_eq!(back, t);
    }
}
