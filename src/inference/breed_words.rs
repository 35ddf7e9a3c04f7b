//! The words people use for breeds: a text query (`beagles`, `german shepherd`, `alsatian`,
//! `berger allemand`, `siamese`) to ImageNet classes. Pure; case, accents, punctuation and plurals
//! do not matter. Species words (dog, chat, gato, Katze...) stand for every breed of the species,
//! but only when the query names no breed ("pug dog" is pugs, "black cat" every cat).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::labels::{CAT_CLASSES, DOG_CLASSES, class_name};

/// What a text query was understood as.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BreedQuery {
    /// The ImageNet classes asked for, ascending.
    pub classes: Vec<u16>,
}

impl BreedQuery {
    /// Whether the query named no breed and no species.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The names of the classes asked for.
    pub fn names(&self) -> Vec<&'static str> {
        self.classes.iter().filter_map(|&c| class_name(c)).collect()
    }
}

/// Longest phrase looked up, in words.
const MAX_PHRASE: usize = 4;

/// Understands a text query: every breed or group it names, else every breed of the species it
/// names, else nothing.
pub fn parse_breed_query(text: &str) -> BreedQuery {
    let words: Vec<String> = normalize(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(singular)
        .collect();
    let table = aliases();
    let mut breeds: Vec<u16> = Vec::new();
    let mut species: Vec<u16> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut matched = false;
        for n in (1..=MAX_PHRASE.min(words.len() - i)).rev() {
            let phrase = words[i..i + n].join(" ");
            if let Some(entry) = table.get(phrase.as_str()) {
                match entry {
                    Alias::Breeds(classes) => breeds.extend(classes),
                    Alias::Species(classes) => species.extend(classes),
                }
                i += n;
                matched = true;
                break;
            }
        }
        if !matched {
            i += 1;
        }
    }
    let mut classes = if breeds.is_empty() { species } else { breeds };
    classes.sort_unstable();
    classes.dedup();
    BreedQuery { classes }
}

/// Lower case, accents folded, anything but letters and digits a space.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars().flat_map(char::to_lowercase) {
        let folded = match ch {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'ç' => "c",
            'è' | 'é' | 'ê' | 'ë' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ñ' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => "o",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'ß' => "ss",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => " ",
        };
        out.push_str(folded);
    }
    out
}

/// One word's singular, as far as a lookup needs: the same rule is applied to the table, so it
/// only has to be consistent (`collies` and `collie` both give `colly`).
fn singular(word: &str) -> String {
    let mut w = word.to_owned();
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w.pop();
    }
    if w.len() > 3 && w.ends_with("ie") {
        w.truncate(w.len() - 2);
        w.push('y');
    }
    w
}

enum Alias {
    Breeds(Vec<u16>),
    Species(Vec<u16>),
}

/// Breed words: (classes, words). Each class's ImageNet name is added on its own.
const BREED_WORDS: &[(&[u16], &[&str])] = &[
    (&[151], &["chi"]),
    (&[152], &["japanese chin", "chin"]),
    (
        &[153],
        &[
            "maltese",
            "maltese terrier",
            "bichon maltais",
            "maltes",
            "malteser",
        ],
    ),
    (&[154], &["pekingese", "peke", "pekinois"]),
    (&[155], &["shih tzu", "shihtzu"]),
    (&[156], &["king charles spaniel", "cavalier king charles"]),
    (&[158], &["english toy terrier"]),
    (&[159], &["ridgeback"]),
    (
        &[160],
        &["afghan", "levrier afghan", "galgo afgano", "afghane"],
    ),
    (&[161], &["basset hound", "basset", "basset artesien"]),
    (&[163], &["chien de saint hubert", "sabueso", "bluthund"]),
    (&[164], &["bluetick coonhound"]),
    (&[165], &["coonhound", "black and tan"]),
    (&[166], &["treeing walker coonhound"]),
    (&[167], &["foxhound"]),
    (&[168], &["redbone coonhound"]),
    (&[169], &["russian wolfhound", "barzoi", "barsoi"]),
    (
        &[170],
        &["wolfhound", "irish wolfhound", "irischer wolfshund"],
    ),
    (
        &[171],
        &["greyhound", "levrette", "galgo italiano", "windspiel"],
    ),
    (&[174], &["elkhound"]),
    (&[177], &["deerhound"]),
    (&[178], &["braque de weimar"]),
    (
        &[179],
        &[
            "staffie",
            "staffy",
            "staffordshire bull terrier",
            "staffy bull",
        ],
    ),
    (&[180], &["amstaff", "american staffordshire"]),
    (
        &[179, 180],
        &["pit bull", "pitbull", "pit", "staffordshire"],
    ),
    (&[183], &["kerry blue"]),
    (&[187], &["yorkie", "yorkshire"]),
    (&[188], &["fox terrier"]),
    (&[191], &["airedale terrier"]),
    (&[192], &["cairn terrier"]),
    (&[195], &["boston terrier"]),
    (
        &[196, 197, 198],
        &["schnauzer", "schnauzer nain", "zwergschnauzer"],
    ),
    (&[199], &["scottish terrier", "scottie"]),
    (&[203], &["westie", "westy", "west highland"]),
    (&[204], &["lhasa apso"]),
    (
        &[205, 206, 207, 208, 209],
        &["retriever", "apporteur", "cobrador"],
    ),
    (&[207], &["golden", "goldie", "golden retriever"]),
    (&[208], &["labrador", "lab", "labbie"]),
    (&[209], &["chessie"]),
    (&[210], &["german pointer", "braque allemand", "kurzhaar"]),
    (&[210, 211], &["pointer", "braque"]),
    (&[211], &["hungarian pointer", "magyar vizsla"]),
    (&[212, 213, 214], &["setter"]),
    (&[213], &["red setter", "setter irlandais"]),
    (&[215], &["brittany", "epagneul breton"]),
    (&[216], &["clumber spaniel"]),
    (
        &[217],
        &["english springer spaniel", "springer spaniel", "springer"],
    ),
    (&[219], &["cocker", "american cocker"]),
    (
        &[152, 156, 215, 216, 217, 218, 219, 220, 221],
        &["spaniel", "epagneul"],
    ),
    (&[224], &["belgian shepherd", "berger belge"]),
    (&[225], &["belgian malinois", "malinois"]),
    (&[227], &["australian kelpie"]),
    (&[229], &["bobtail"]),
    (&[230], &["sheltie", "shetland", "berger des shetland"]),
    (&[231], &["rough collie", "lassie"]),
    (&[232], &["border"]),
    (&[231, 232], &["colley"]),
    (&[234], &["rottie", "rotweiler"]),
    (
        &[235],
        &[
            "alsatian",
            "german shepherd dog",
            "gsd",
            "berger allemand",
            "pastor aleman",
            "schaferhund",
            "schaeferhund",
            "deutscher schaferhund",
        ],
    ),
    (
        &[236],
        &[
            "doberman pinscher",
            "dobermann",
            "dobie",
            "dobermann pinscher",
        ],
    ),
    (&[237], &["min pin", "zwergpinscher", "pinscher nain"]),
    (&[238], &["swissy", "great swiss mountain dog"]),
    (
        &[239],
        &[
            "bernese",
            "berner",
            "bouvier bernois",
            "boyero de berna",
            "berner sennenhund",
        ],
    ),
    (&[240], &["appenzeller sennenhund"]),
    (
        &[241],
        &["entlebucher mountain dog", "entlebucher sennenhund"],
    ),
    (&[238, 239, 240, 241], &["sennenhund", "mountain dog"]),
    (&[243], &["bullmastiff"]),
    (&[243, 244], &["mastiff", "mastin", "dogue"]),
    (
        &[245],
        &[
            "frenchie",
            "french bull",
            "bouledogue",
            "bouledogue francais",
            "bulldog frances",
            "franzosische bulldogge",
        ],
    ),
    (&[195, 245], &["bulldog", "bulldogge"]),
    (
        &[246],
        &[
            "dane",
            "dogue allemand",
            "gran danes",
            "deutsche dogge",
            "dogge",
        ],
    ),
    (
        &[247],
        &[
            "st bernard",
            "saint bernard",
            "san bernardo",
            "bernhardiner",
        ],
    ),
    (&[248], &["american eskimo"]),
    (&[249], &["alaskan malamute"]),
    (
        &[250],
        &[
            "husky",
            "huskie",
            "siberian",
            "husky siberien",
            "husky siberiano",
            "sibirischer husky",
        ],
    ),
    (&[251], &["dalmation", "dalmatien", "dalmata", "dalmatiner"]),
    (&[252], &["monkey pinscher"]),
    (&[254], &["pug dog", "carlin", "carlino", "mops", "mop"]),
    (&[255], &["leonberger"]),
    (
        &[256],
        &["newfie", "terre neuve", "terranova", "neufundlander"],
    ),
    (
        &[257],
        &[
            "pyrenean mountain dog",
            "pyr",
            "montagne des pyrenees",
            "patou",
        ],
    ),
    (&[258], &["sammy", "samojede"]),
    (
        &[259],
        &[
            "pom",
            "spitz nain",
            "loulou de pomeranie",
            "pomerania",
            "zwergspitz",
        ],
    ),
    (&[260], &["chow chow"]),
    (&[259, 261], &["spitz"]),
    (
        &[262],
        &["griffon", "brussels griffon", "griffon bruxellois"],
    ),
    (&[263], &["pembroke", "pembroke corgi"]),
    (&[264], &["cardigan", "cardigan corgi"]),
    (&[263, 264], &["corgi", "welsh corgi"]),
    (&[265, 266, 267], &["poodle", "caniche", "pudel"]),
    (&[265], &["caniche toy", "toy pudel"]),
    (&[266], &["caniche nain", "zwergpudel"]),
    (&[267], &["caniche royal", "konigspudel"]),
    (
        &[268],
        &["xolo", "xoloitzcuintli", "xoloitzcuintle", "perro sin pelo"],
    ),
    // Cats.
    (
        &[281],
        &["tabby cat", "tabbie", "tabby", "tigrado", "atigrado"],
    ),
    (
        &[281, 282],
        &["tigre", "chat tigre", "getigert", "getigerte"],
    ),
    (&[282], &["tiger"]),
    (
        &[283],
        &["persian", "persan", "persa", "perser", "perserkatze"],
    ),
    (
        &[284],
        &["siamese", "siamois", "siames", "siamkatze", "siam"],
    ),
    (
        &[285],
        &["egyptian", "egyptian mau", "mau", "egyptien", "egipcio"],
    ),
];

/// Species words: every breed of the species.
const DOG_WORDS: &[&str] = &[
    "dog", "doggy", "doggo", "puppy", "pup", "hound", "chien", "chienne", "chiot", "perro",
    "perra", "cachorro", "hund", "hunde", "hundin", "welpe", "welpen",
];
const CAT_WORDS: &[&str] = &[
    "cat", "kitty", "kitten", "chat", "chatte", "chaton", "gato", "gata", "gatito", "katze",
    "katzen", "kater", "katzchen",
];

/// Every alias, normalised and singular, to its classes.
fn aliases() -> &'static HashMap<String, Alias> {
    static TABLE: OnceLock<HashMap<String, Alias>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let key = |phrase: &str| {
            normalize(phrase)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(singular)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut table: HashMap<String, Alias> = HashMap::new();
        let mut add = |phrase: &str, classes: &[u16]| {
            let k = key(phrase);
            if k.is_empty() {
                return;
            }
            match table.entry(k).or_insert_with(|| Alias::Breeds(Vec::new())) {
                Alias::Breeds(existing) => existing.extend(classes),
                Alias::Species(_) => {}
            }
        };
        for class in DOG_CLASSES.chain(CAT_CLASSES) {
            let class = class as u16;
            if let Some(name) = class_name(class) {
                add(name, &[class]);
            }
        }
        for (classes, words) in BREED_WORDS {
            for word in *words {
                add(word, classes);
            }
        }
        for (words, classes) in [(DOG_WORDS, DOG_CLASSES), (CAT_WORDS, CAT_CLASSES)] {
            let all: Vec<u16> = classes.map(|c| c as u16).collect();
            for word in words {
                table.insert(key(word), Alias::Species(all.clone()));
            }
        }
        table
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(q: &str) -> Vec<&'static str> {
        parse_breed_query(q).names()
    }

    #[test]
    fn names_plurals_synonyms_and_translations_find_their_breed() {
        for q in ["beagle", "Beagles", "BEAGLE!", "my lost beagle"] {
            assert_eq!(names(q), ["beagle"], "{q}");
        }
        for q in [
            "german shepherd",
            "German Shepherds",
            "alsatian",
            "berger allemand",
            "pastor alemán",
            "Deutscher Schäferhund",
        ] {
            assert_eq!(names(q), ["German shepherd"], "{q}");
        }
        for q in ["golden", "goldie", "golden retrievers"] {
            assert_eq!(names(q), ["golden retriever"], "{q}");
        }
        assert_eq!(names("pug dog"), ["pug"]);
        assert_eq!(names("carlin"), ["pug"]);
        assert_eq!(names("siamese"), ["Siamese cat"]);
        assert_eq!(names("chat siamois"), ["Siamese cat"]);
        assert_eq!(names("tabby"), ["tabby"]);
        assert_eq!(names("tabbies"), ["tabby"]);
        assert_eq!(names("huskies"), ["Siberian husky"]);
        assert_eq!(names("collies"), ["collie"]);
        assert_eq!(
            names("poodles"),
            ["toy poodle", "miniature poodle", "standard poodle"]
        );
        assert_eq!(names("beagle or pug"), ["beagle", "pug"]);
    }

    #[test]
    fn species_words_stand_for_every_breed_unless_a_breed_is_named() {
        assert_eq!(parse_breed_query("black cat").classes.len(), 5);
        assert_eq!(parse_breed_query("gatos").classes.len(), 5);
        assert_eq!(parse_breed_query("chien perdu").classes.len(), 118);
        assert_eq!(names("persian cat"), ["Persian cat"]);
        assert!(parse_breed_query("blue bicycle").is_empty());
        assert!(parse_breed_query("").is_empty());
        assert!(parse_breed_query("!!! ???").is_empty());
    }
}
