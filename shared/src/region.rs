//! Region names and the replication tag's value.

use serde::Serialize;

/// True for names shaped like an AWS Region: `us-west-2`, `eu-central-1`, `us-gov-west-1`,
/// `ap-southeast-5`, `cn-north-1`.
pub fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return false;
    }
    let (first, rest) = parts.split_first().expect("len >= 3");
    let (last, middle) = rest.split_last().expect("len >= 3");
    first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && middle
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 2
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// Why a name in the replication tag was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum RegionProblem {
    /// Not shaped like a Region name.
    Unknown { name: String },
    /// A real-looking Region outside the deployment's allow-list.
    NotAllowed { name: String },
}

impl RegionProblem {
    pub fn name(&self) -> &str {
        match self {
            RegionProblem::Unknown { name } | RegionProblem::NotAllowed { name } => name,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            RegionProblem::Unknown { name } => {
                format!("'{name}' is not an AWS Region name")
            }
            RegionProblem::NotAllowed { name } => {
                format!("Region {name} is not in ALLOWED_REGIONS; nothing is written there")
            }
        }
    }
}

/// The Regions a tag value asks for, split into usable ones and rejected ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegionSelection {
    /// Allowed target Regions, in tag order, without duplicates or the primary's own Region.
    pub targets: Vec<String>,
    pub rejected: Vec<RegionProblem>,
}

/// Parses a tag value such as `"us-west-2 eu-west-1"`. AWS tag values allow no commas, so
/// names are separated by white space; commas are tolerated anyway because people type them.
pub fn select_regions(
    tag_value: &str,
    primary_region: &str,
    allowed: &[String],
) -> RegionSelection {
    let mut sel = RegionSelection::default();
    for name in tag_value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
    {
        let name = name.to_ascii_lowercase();
        if name == primary_region
            || sel.targets.contains(&name)
            || sel.rejected.iter().any(|p| p.name() == name)
        {
            continue;
        }
        if !is_region_name(&name) {
            sel.rejected.push(RegionProblem::Unknown { name });
        } else if !allowed.iter().any(|a| a == &name) {
            sel.rejected.push(RegionProblem::NotAllowed { name });
        } else {
            sel.targets.push(name);
        }
    }
    sel
}

/// Parses a list of Region names from configuration (space or comma separated).
pub fn parse_region_list(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for name in s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
    {
        if !is_region_name(name) {
            return Err(format!("'{name}' is not an AWS Region name"));
        }
        if !out.iter().any(|r| r == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        ["us-east-1", "us-west-2", "eu-west-1"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn region_names_are_recognised() {
        for ok in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-5",
            "cn-north-1",
        ] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in [
            "us-west",
            "uswest2",
            "US-WEST-2",
            "us-west-2a",
            "mars",
            "",
            "us--2",
            "a-b-1",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn tag_value_is_split_on_spaces_and_sorted_into_targets_and_problems() {
        let sel = select_regions(
            "us-west-2  eu-west-1 ap-south-1 nowhere us-east-1 us-west-2",
            "us-east-1",
            &allowed(),
        );
        assert_eq!(sel.targets, vec!["us-west-2", "eu-west-1"]);
        assert_eq!(
            sel.rejected,
            vec![
                RegionProblem::NotAllowed {
                    name: "ap-south-1".into()
                },
                RegionProblem::Unknown {
                    name: "nowhere".into()
                },
            ]
        );
    }

    #[test]
    fn commas_are_tolerated_in_tag_values() {
        let sel = select_regions("us-west-2,eu-west-1", "us-east-1", &allowed());
        assert_eq!(sel.targets, vec!["us-west-2", "eu-west-1"]);
    }

    #[test]
    fn config_region_lists_reject_bad_names() {
        assert_eq!(parse_region_list("us-east-1, us-west-2").unwrap().len(), 2);
        assert!(parse_region_list("us-east-1 bogus").is_err());
    }
}
