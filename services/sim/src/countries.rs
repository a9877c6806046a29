//! Which countries a number belongs to, from its E.164 calling code: a small table, enough for
//! tests and demos. A number whose calling code is not in it has an "unknown country code".

use domain::E164;

/// Calling code → the countries that share it. Calling codes are prefix-free, so at most one
/// entry matches a number.
const CALLING_CODES: &[(&str, &[&str])] = &[
    ("1", &["US", "CA"]),
    ("7", &["RU", "KZ"]),
    ("20", &["EG"]),
    ("27", &["ZA"]),
    ("30", &["GR"]),
    ("31", &["NL"]),
    ("32", &["BE"]),
    ("33", &["FR"]),
    ("34", &["ES"]),
    ("36", &["HU"]),
    ("39", &["IT"]),
    ("40", &["RO"]),
    ("41", &["CH"]),
    ("43", &["AT"]),
    ("44", &["GB"]),
    ("45", &["DK"]),
    ("46", &["SE"]),
    ("47", &["NO"]),
    ("48", &["PL"]),
    ("49", &["DE"]),
    ("52", &["MX"]),
    ("54", &["AR"]),
    ("55", &["BR"]),
    ("60", &["MY"]),
    ("61", &["AU"]),
    ("64", &["NZ"]),
    ("65", &["SG"]),
    ("81", &["JP"]),
    ("82", &["KR"]),
    ("86", &["CN"]),
    ("91", &["IN"]),
    ("351", &["PT"]),
    ("352", &["LU"]),
    ("353", &["IE"]),
    ("358", &["FI"]),
    ("420", &["CZ"]),
    ("852", &["HK"]),
    ("971", &["AE"]),
    ("972", &["IL"]),
];

/// The countries of a number's calling code, or `None` when the code is not in the table.
pub fn countries_of(number: &E164) -> Option<&'static [&'static str]> {
    let digits = number.as_str().trim_start_matches('+');
    CALLING_CODES
        .iter()
        .find(|(code, _)| digits.starts_with(code))
        .map(|(_, countries)| *countries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> E164 {
        E164::parse(text).unwrap()
    }

    #[test]
    fn a_number_takes_the_countries_of_its_calling_code() {
        assert_eq!(countries_of(&number("+442071234567")), Some(&["GB"][..]));
        assert_eq!(
            countries_of(&number("+14255550100")),
            Some(&["US", "CA"][..])
        );
        assert_eq!(countries_of(&number("+353123456")), Some(&["IE"][..]));
    }

    #[test]
    fn a_calling_code_outside_the_table_is_unknown() {
        assert_eq!(countries_of(&number("+999123456")), None);
        assert_eq!(countries_of(&number("+80012345678")), None);
    }

    #[test]
    fn calling_codes_are_prefix_free() {
        for (code, _) in CALLING_CODES {
            for (other, _) in CALLING_CODES {
                assert!(
                    code == other || !other.starts_with(code),
                    "{code} / {other}"
                );
            }
        }
    }
}
