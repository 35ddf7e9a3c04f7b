//! Species and breed from the model's ImageNet-1k logits, and the words people use for breeds.
//!
//! Pure: logits in, labels out; a text query in, ImageNet classes out. Dogs are classes 151–268
//! (118 breeds), domestic cats 281–285. The names are the WordNet-derived ImageNet labels (the
//! first synonym, some completed: "Pembroke Welsh corgi" rather than "Pembroke").

use serde::Serialize;

use crate::domain::report::{BreedGuess, Species};

/// ImageNet classes of dog breeds.
pub const DOG_CLASSES: std::ops::Range<usize> = 151..269;
/// ImageNet classes of domestic cats.
pub const CAT_CLASSES: std::ops::Range<usize> = 281..286;
/// Classes the model scores.
pub const CLASSES: usize = 1000;

/// Least probability mass of a species' classes (softmax summed over the group) for a photo to be
/// called that species; below it, `other`. Measured on 91 labelled photos (`cargo bench --bench
/// labels`): dogs and cats 0.60–0.95, real non-animal photos at most 0.26 (a grass lawn), so the
/// threshold sits in that gap (90/91 right; the miss is a horse silhouette read as a dog at
/// 0.61). Argmax over the three groups would not do: "other" is 877 classes, and a dog photo
/// often leaves much of its mass on wolves, foxes and objects.
pub const SPECIES_MIN_PROBABILITY: f32 = 0.4;
/// Breeds listed per photo (the most likely within its species).
pub const TOP_BREEDS: usize = 3;
/// Least probability of a listed breed: below it the guess is noise.
pub const MIN_BREED_PROBABILITY: f32 = 0.01;

/// What the model sees in one photo.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PhotoLabels {
    /// dog, cat, or other (neither species reaches `SPECIES_MIN_PROBABILITY`).
    pub predicted_species: Species,
    /// The probability of that species (its classes' softmax summed; for other, the rest).
    pub species_probability: f32,
    /// Most likely breeds of that species, best first (none for other).
    pub breeds: Vec<BreedGuess>,
}

impl PhotoLabels {
    /// Labels as stored: the species, its probability and the breeds' classes and probabilities.
    /// Unknown classes are dropped.
    pub fn from_stored(
        species: Species,
        species_probability: f32,
        classes: &[i16],
        probabilities: &[f32],
    ) -> Self {
        let breeds = classes
            .iter()
            .zip(probabilities)
            .filter_map(|(&class, &probability)| {
                let class = u16::try_from(class).ok()?;
                Some(BreedGuess {
                    class,
                    name: class_name(class)?,
                    probability,
                })
            })
            .collect();
        PhotoLabels {
            predicted_species: species,
            species_probability,
            breeds,
        }
    }

    /// The breeds' classes (for storage).
    pub fn breed_classes(&self) -> Vec<i16> {
        self.breeds.iter().map(|b| b.class as i16).collect()
    }

    /// The breeds' probabilities (for storage), in the order of `breed_classes`.
    pub fn breed_probabilities(&self) -> Vec<f32> {
        self.breeds.iter().map(|b| b.probability).collect()
    }
}

/// Species and breeds from one photo's logits; `None` when they are not 1000 finite values.
pub fn labels_from_logits(logits: &[f32]) -> Option<PhotoLabels> {
    if logits.len() != CLASSES || logits.iter().any(|l| !l.is_finite()) {
        return None;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    let p: Vec<f32> = exp.iter().map(|e| e / total).collect();
    let dog: f32 = p[DOG_CLASSES].iter().sum();
    let cat: f32 = p[CAT_CLASSES].iter().sum();
    let (species, probability, classes) = if dog >= cat && dog >= SPECIES_MIN_PROBABILITY {
        (Species::Dog, dog, DOG_CLASSES)
    } else if cat > dog && cat >= SPECIES_MIN_PROBABILITY {
        (Species::Cat, cat, CAT_CLASSES)
    } else {
        return Some(PhotoLabels {
            predicted_species: Species::Other,
            species_probability: (1.0 - dog - cat).clamp(0.0, 1.0),
            breeds: Vec::new(),
        });
    };
    let mut ranked: Vec<usize> = classes.collect();
    ranked.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    let breeds = ranked
        .into_iter()
        .take(TOP_BREEDS)
        .filter(|&c| p[c] >= MIN_BREED_PROBABILITY)
        .filter_map(|c| {
            let class = c as u16;
            Some(BreedGuess {
                class,
                name: class_name(class)?,
                probability: p[c],
            })
        })
        .collect();
    Some(PhotoLabels {
        predicted_species: species,
        species_probability: probability.min(1.0),
        breeds,
    })
}

/// The name of a dog or cat class; `None` for any other class.
pub fn class_name(class: u16) -> Option<&'static str> {
    let c = usize::from(class);
    if DOG_CLASSES.contains(&c) {
        Some(DOG_NAMES[c - DOG_CLASSES.start])
    } else if CAT_CLASSES.contains(&c) {
        Some(CAT_NAMES[c - CAT_CLASSES.start])
    } else {
        None
    }
}

/// The species a breed class belongs to.
pub fn class_species(class: u16) -> Option<Species> {
    let c = usize::from(class);
    if DOG_CLASSES.contains(&c) {
        Some(Species::Dog)
    } else if CAT_CLASSES.contains(&c) {
        Some(Species::Cat)
    } else {
        None
    }
}

/// Classes 151–268.
const DOG_NAMES: [&str; 118] = [
    "Chihuahua",
    "Japanese spaniel",
    "Maltese dog",
    "Pekinese",
    "Shih-Tzu",
    "Blenheim spaniel",
    "papillon",
    "toy terrier",
    "Rhodesian ridgeback",
    "Afghan hound",
    "basset",
    "beagle",
    "bloodhound",
    "bluetick",
    "black-and-tan coonhound",
    "Walker hound",
    "English foxhound",
    "redbone",
    "borzoi",
    "Irish wolfhound",
    "Italian greyhound",
    "whippet",
    "Ibizan hound",
    "Norwegian elkhound",
    "otterhound",
    "Saluki",
    "Scottish deerhound",
    "Weimaraner",
    "Staffordshire bullterrier",
    "American Staffordshire terrier",
    "Bedlington terrier",
    "Border terrier",
    "Kerry blue terrier",
    "Irish terrier",
    "Norfolk terrier",
    "Norwich terrier",
    "Yorkshire terrier",
    "wire-haired fox terrier",
    "Lakeland terrier",
    "Sealyham terrier",
    "Airedale",
    "cairn",
    "Australian terrier",
    "Dandie Dinmont",
    "Boston bull",
    "miniature schnauzer",
    "giant schnauzer",
    "standard schnauzer",
    "Scotch terrier",
    "Tibetan terrier",
    "silky terrier",
    "soft-coated wheaten terrier",
    "West Highland white terrier",
    "Lhasa",
    "flat-coated retriever",
    "curly-coated retriever",
    "golden retriever",
    "Labrador retriever",
    "Chesapeake Bay retriever",
    "German short-haired pointer",
    "vizsla",
    "English setter",
    "Irish setter",
    "Gordon setter",
    "Brittany spaniel",
    "clumber",
    "English springer",
    "Welsh springer spaniel",
    "cocker spaniel",
    "Sussex spaniel",
    "Irish water spaniel",
    "kuvasz",
    "schipperke",
    "groenendael",
    "malinois",
    "briard",
    "kelpie",
    "komondor",
    "Old English sheepdog",
    "Shetland sheepdog",
    "collie",
    "Border collie",
    "Bouvier des Flandres",
    "Rottweiler",
    "German shepherd",
    "Doberman",
    "miniature pinscher",
    "Greater Swiss Mountain dog",
    "Bernese mountain dog",
    "Appenzeller",
    "EntleBucher",
    "boxer",
    "bull mastiff",
    "Tibetan mastiff",
    "French bulldog",
    "Great Dane",
    "Saint Bernard",
    "Eskimo dog",
    "malamute",
    "Siberian husky",
    "dalmatian",
    "affenpinscher",
    "basenji",
    "pug",
    "Leonberg",
    "Newfoundland",
    "Great Pyrenees",
    "Samoyed",
    "Pomeranian",
    "chow",
    "keeshond",
    "Brabancon griffon",
    "Pembroke Welsh corgi",
    "Cardigan Welsh corgi",
    "toy poodle",
    "miniature poodle",
    "standard poodle",
    "Mexican hairless",
];

/// Classes 281–285.
const CAT_NAMES: [&str; 5] = [
    "tabby",
    "tiger cat",
    "Persian cat",
    "Siamese cat",
    "Egyptian cat",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn logits_with(peaks: &[(usize, f32)]) -> Vec<f32> {
        let mut l = vec![0.0; CLASSES];
        for &(c, v) in peaks {
            l[c] = v;
        }
        l
    }

    #[test]
    fn the_name_table_covers_the_dog_and_cat_classes() {
        assert_eq!(class_name(151), Some("Chihuahua"));
        assert_eq!(class_name(162), Some("beagle"));
        assert_eq!(class_name(207), Some("golden retriever"));
        assert_eq!(class_name(235), Some("German shepherd"));
        assert_eq!(class_name(254), Some("pug"));
        assert_eq!(class_name(268), Some("Mexican hairless"));
        assert_eq!(class_name(281), Some("tabby"));
        assert_eq!(class_name(284), Some("Siamese cat"));
        assert_eq!(class_name(285), Some("Egyptian cat"));
        assert_eq!(class_name(150), None);
        assert_eq!(class_name(269), None);
        assert_eq!(class_name(286), None);
    }

    #[test]
    fn a_confident_beagle_is_a_dog_with_beagle_first() {
        let labels = labels_from_logits(&logits_with(&[(162, 12.0), (161, 10.0)])).unwrap();
        assert_eq!(labels.predicted_species, Species::Dog);
        assert!(labels.species_probability > 0.9);
        assert_eq!(labels.breeds[0].name, "beagle");
        assert_eq!(labels.breeds[1].name, "basset");
        assert!(labels.breeds.len() <= TOP_BREEDS);
        let stored = PhotoLabels::from_stored(
            labels.predicted_species,
            labels.species_probability,
            &labels.breed_classes(),
            &labels.breed_probabilities(),
        );
        assert_eq!(stored, labels);
    }

    #[test]
    fn a_cat_is_a_cat_and_flat_logits_are_other() {
        let cat = labels_from_logits(&logits_with(&[(284, 9.0), (283, 7.0)])).unwrap();
        assert_eq!(cat.predicted_species, Species::Cat);
        assert_eq!(cat.breeds[0].name, "Siamese cat");
        // Uniform logits: 118 of 1000 classes are dogs, below the threshold.
        let flat = labels_from_logits(&[0.0; CLASSES]).unwrap();
        assert_eq!(flat.predicted_species, Species::Other);
        assert!(flat.breeds.is_empty());
        assert!((flat.species_probability - 0.877).abs() < 1e-3);
    }

    #[test]
    fn logits_of_the_wrong_length_or_not_finite_have_no_labels() {
        assert!(labels_from_logits(&[0.0; 10]).is_none());
        assert!(labels_from_logits(&logits_with(&[(3, f32::NAN)])).is_none());
    }
}
