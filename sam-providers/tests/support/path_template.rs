//! Which documented path template a request path is: shared by the contract
//! checks of SAM's own API (sam-server) and of the emulators (here).

/// The template of `templates` that `path` matches (`{parameters}` match
/// one non-empty segment; the template with the most literal segments wins).
pub fn template_for<'a>(templates: impl Iterator<Item = &'a String>, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    templates
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.clone()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}
