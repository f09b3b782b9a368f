"""Bilingual template grammar behind the bundled French-English sample corpus.

``python -m seq2seq_nmt.data.sample_grammar [OUTPUT]`` regenerates ``assets/eng-fra.txt``.
"""

import random
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import product
from pathlib import Path
from typing import NamedTuple

from seq2seq_nmt.data.normalize import normalize_tutorial

Pair = tuple[str, str]
DEFAULT_PATH = Path(__file__).parents[1] / "assets" / "eng-fra.txt"
MAX_WORDS = 9  # normalised words per side, punctuation included: what max_length=10 keeps
FR_VOWELS = tuple("aeiouyàâéèêîôœh")  # the only French h-word here, "homme", elides
ELIDABLE = {"je", "ne", "le", "la", "de", "que", "ce"}


class Subject(NamedTuple):
    """A subject; ``person`` is the conjugation slot (je, tu, il, nous, vous, ils)."""

    en: str
    fr: str
    person: int
    fem: bool
    tags: str = "p"
    pronoun: bool = True


class Noun(NamedTuple):
    """Singular/plural forms; lower-case tags are semantic classes, upper-case ones the
    prenominal adjectives (keys of PRENOMINAL) that fit the noun."""

    fr: tuple[str, str]
    en: tuple[str, str]
    fem: bool
    tags: str


class Adj(NamedTuple):
    """Predicative adjective: French masc sg, fem sg, masc pl, fem pl forms."""

    fr: tuple[str, ...]
    en: str
    tags: str  # noun classes it describes
    adverbs: str = ""  # keys of ADVERBS it combines with


class Verb(NamedTuple):
    """Transitive verb; ``prog`` ones translate the French present as English progressive."""

    fr: tuple[str, ...]  # present tense, six persons
    en: str
    objects: str  # noun classes it takes as object
    indefinite: bool  # whether "un/une" objects make sense
    prog: bool = False

    @property
    def en3(self) -> str:
        """English third person singular."""
        return "has" if self.en == "have" else self.en + "s"

    @property
    def ing(self) -> str:
        """English -ing form, e.g. 'looking for'."""
        head, _, tail = self.en.partition(" ")
        return f"{head.removesuffix('e')}ing {tail}".strip()


def _numbers(spec: str) -> tuple[str, str]:
    """'sg' or 'sg/pl' to (sg, pl); regular plurals add -s."""
    sg, _, pl = spec.partition("/")
    return sg, pl or sg + "s"


def noun(fr: str, gender: str, en: str, tags: str) -> Noun:
    """Noun from 'sg' or 'sg/pl' specs."""
    return Noun(_numbers(fr), _numbers(en), gender == "f", tags)


def adj(spec: str, en: str, tags: str, adverbs: str = "") -> Adj:
    """Adjective from its four forms 'ms/fs/mp/fp', or just 'ms' when regular."""
    if "/" in spec:
        return Adj(tuple(spec.split("/")), en, tags, adverbs)
    fs = spec if spec.endswith("e") else spec + "e"
    mp = spec if spec.endswith(("s", "x")) else spec + "s"
    return Adj((spec, fs, mp, fs + "s"), en, tags, adverbs)


def verb(fr: str, en: str, objects: str, indefinite: bool, prog: bool = False) -> Verb:
    """Verb from its six present forms 'je/tu/il/nous/vous/ils'."""
    return Verb(tuple(fr.split("/")), en, objects, indefinite, prog)


ETRE = ("suis", "es", "est", "sommes", "êtes", "sont")
BE = ("am", "are", "is", "are", "are", "are")
DO = ("do", "do", "does", "do", "do", "do")
PERSONS = tuple(  # pronoun and name subjects
    Subject(en, fr, person, fem, pronoun=fr.islower())
    for en, fr, person, fem in (
        ("I", "je", 0, False), ("I", "je", 0, True), ("you", "tu", 1, False),
        ("you", "tu", 1, True), ("he", "il", 2, False), ("she", "elle", 2, True),
        ("Tom", "Tom", 2, False), ("Mary", "Marie", 2, True), ("we", "nous", 3, False),
        ("we", "nous", 3, True), ("you", "vous", 4, False), ("you", "vous", 4, True),
        ("they", "ils", 5, False), ("they", "elles", 5, True),
    )
)  # fmt: skip
# Semantic classes: p person, a animal, k pet (fits indoors), f food, m movable object,
# o opens and closes, r readable, s can be owned or bought, v vehicle, t public transport;
# x takes no possessive ("ma fille" is "my daughter", "ma femme" "my wife").
NOUNS = (
    noun("ami", "m", "friend", "pNV"),
    noun("amie", "f", "friend", "pNV"),
    noun("garçon", "m", "boy", "pxBPG"),
    noun("fille", "f", "girl", "pxG"),
    noun("homme", "m", "man/men", "pxV"),
    noun("femme", "f", "woman/women", "pxV"),
    noun("professeur", "m", "teacher", "pBN"),
    noun("chien", "m", "dog", "akBPGV"),
    noun("chat", "m", "cat", "akPGV"),
    noun("cheval/chevaux", "m", "horse", "aEPGV"),
    noun("oiseau/oiseaux", "m", "bird", "akEP"),
    noun("pomme", "f", "apple", "fm"),
    noun("gâteau/gâteaux", "m", "cake", "fmBPG"),
    noun("orange", "f", "orange", "fm"),
    noun("livre", "m", "book", "morsBNVP"),
    noun("lettre", "f", "letter", "mr"),
    noun("journal/journaux", "m", "newspaper", "mrs"),
    noun("clé", "f", "key", "msN"),
    noun("sac", "m", "bag", "mosNVPG"),
    noun("boîte", "f", "box/boxes", "mosPG"),
    noun("stylo", "m", "pen", "msN"),
    noun("ordinateur", "m", "computer", "msNV"),
    noun("parapluie", "m", "umbrella", "msNV"),
    noun("porte", "f", "door", "o"),
    noun("fenêtre", "f", "window", "o"),
    noun("maison", "f", "house", "sENVPG"),
    noun("voiture", "f", "car", "svENVPG"),
    noun("vélo", "m", "bike", "svNV"),
    noun("bus/bus", "m", "bus/buses", "tV"),
    noun("train", "m", "train", "tV"),
)
ADVERBS = {"v": ("very", "très"), "r": ("really", "vraiment"), "t": ("too", "trop"),
           "l": ("a little", "un peu")}  # fmt: skip
ADJECTIVES = (
    adj("fatigué", "tired", "pa", "vrtl"),
    adj("prêt", "ready", "p"),
    adj("heureux/heureuse/heureux/heureuses", "happy", "p", "vr"),
    adj("triste", "sad", "pa", "vrl"),
    adj("malade", "sick", "pa", "vrtl"),
    adj("occupé", "busy", "p", "vrtl"),
    adj("en retard/en retard/en retard/en retard", "late", "pt", "vrtl"),
    adj("jeune", "young", "pa", "vrtl"),
    adj("grand", "tall", "p", "vrt"),
    adj("petit", "short", "p", "vrt"),
    adj("grand", "big", "asv", "vrt"),
    adj("petit", "small", "asv", "vrt"),
    adj("vieux/vieille/vieux/vieilles", "old", "paV", "vrtl"),
    adj("nouveau/nouvelle/nouveaux/nouvelles", "new", "N"),
    adj("beau/belle/beaux/belles", "beautiful", "E", "vr"),
    adj("sale", "dirty", "asv", "vrtl"),
    adj("bon/bonne/bons/bonnes", "good", "fr", "vr"),
    adj("ouvert", "open", "o"),
    adj("fermé", "closed", "o"),
)
# Key: (English, French masc sg, fem sg, masc pl, fem pl, masc sg before a vowel).
PRENOMINAL = {
    "B": ("good", "bon", "bonne", "bons", "bonnes", "bon"),
    "E": ("beautiful", "beau", "belle", "beaux", "belles", "bel"),
    "N": ("new", "nouveau", "nouvelle", "nouveaux", "nouvelles", "nouvel"),
    "V": ("old", "vieux", "vieille", "vieux", "vieilles", "vieil"),
    "P": ("little", "petit", "petite", "petits", "petites", "petit"),
    "G": ("big", "grand", "grande", "grands", "grandes", "grand"),
}
# Key: (English sg, English pl, French masc sg, fem sg, pl).
DETS = {
    "the": ("the", "the", "le", "la", "les"),
    "a": ("a", "", "un", "une", "des"),
    "my": ("my", "my", "mon", "ma", "mes"),
    "ton": ("your", "your", "ton", "ta", "tes"),
    "votre": ("your", "your", "votre", "votre", "vos"),
    "this": ("this", "these", "ce", "cette", "ces"),
}
POSSESSIVES = {"my", "ton", "votre"}
BEFORE_VOWEL = {"ma": "mon", "ta": "ton", "ce": "cet"}
CLASH = {("ton", 4), ("votre", 1)}  # "vous ... ton", "tu ... votre"
PLACES = (  # (English, French, classes of what can be there)
    ("in the kitchen", "dans la cuisine", "pkm"),
    ("in the garden", "dans le jardin", "pamv"),
    ("in the bedroom", "dans la chambre", "pkm"),
    ("in the car", "dans la voiture", "pkm"),
    ("at home", "à la maison", "pk"),
    ("at school", "à la école", "p"),
    ("at the office", "au bureau", "pm"),
    ("at the station", "à la gare", "pt"),
    ("in the park", "au parc", "pav"),
    ("at the beach", "à la plage", "pa"),
    ("on the table", "sur la table", "km"),
    ("under the table", "sous la table", "km"),
    ("under the bed", "sous le lit", "km"),
    ("in front of the house", "devant la maison", "pav"),
    ("behind the door", "derrière la porte", "pkm"),
    ("near the window", "près de la fenêtre", "pkm"),
    ("in Paris", "à Paris", "p"),
)
VERBS = (
    verb("vois/vois/voit/voyons/voyez/voient", "see", "pafmorsvt", True),
    verb("aime/aimes/aime/aimons/aimez/aiment", "like", "afs", False),
    verb("veux/veux/veut/voulons/voulez/veulent", "want", "afs", True),
    verb("ai/as/a/avons/avez/ont", "have", "afs", True),
    verb("connais/connais/connaît/connaissons/connaissez/connaissent", "know", "p", False),
    verb("cherche/cherches/cherche/cherchons/cherchez/cherchent", "look for", "pams", True, True),
    verb("mange/manges/mange/mangeons/mangez/mangent", "eat", "f", True, True),
    verb("lis/lis/lit/lisons/lisez/lisent", "read", "r", True, True),
    verb("achète/achètes/achète/achetons/achetez/achètent", "buy", "fs", True, True),
    verb("attends/attends/attend/attendons/attendez/attendent", "wait for", "pt", True, True),
    verb("ouvre/ouvres/ouvre/ouvrons/ouvrez/ouvrent", "open", "o", False, True),
    verb("ferme/fermes/ferme/fermons/fermez/ferment", "close", "o", False, True),
)
PROGRESSIVE = tuple(v for v in VERBS if v.prog)  # the verbs that also make imperatives


def english(text: str, punct: str) -> str:
    """Finish an English sentence: a/an, capital letter, punctuation."""
    words = text.split()
    words = [
        "an" if w == "a" and n[0] in "aeiou" else w
        for w, n in zip(words, words[1:] + ["."], strict=True)
    ]
    s = " ".join(words)
    return s[0].upper() + s[1:] + punct


def french(text: str, punct: str) -> str:
    """Finish a French sentence: elision, capital letter, punctuation (' ?' and ' !')."""
    words = text.split()
    s = "".join(
        w[:-1] + "'" if w in ELIDABLE and n.startswith(FR_VOWELS) else w + " "
        for w, n in zip(words, words[1:] + [""], strict=True)
    ).rstrip()
    return s[0].upper() + s[1:] + (punct if punct == "." else " " + punct)


def pair(en: str, fr: str, punct: str) -> Pair:
    """Finished (English, French) sentence pair."""
    return english(en, punct), french(fr, punct)


def noun_phrase(det: str, n: Noun, plural: bool, a: str = "", neg: bool = False) -> Pair:
    """English and French noun phrase, e.g. ('my old car', 'ma vieille voiture')."""
    en_sg, en_pl, *fr_dets = DETS[det]
    en, fr = n.en[plural], n.fr[plural]
    if a:
        en_adj, *fr_adj = PRENOMINAL[a]
        vowel = not plural and not n.fem and fr.startswith(FR_VOWELS)
        en, fr = f"{en_adj} {en}", f"{fr_adj[4 if vowel else 2 * plural + n.fem]} {fr}"
    det_fr = fr_dets[2 if plural else n.fem]
    if det == "a" and (neg or (plural and a)):
        det_fr = "de"
    elif not plural and fr.startswith(FR_VOWELS):
        det_fr = BEFORE_VOWEL.get(det_fr, det_fr)
    return f"{en_pl if plural else en_sg} {en}".strip(), f"{det_fr} {fr}"


def determines(det: str, n: Noun) -> bool:
    """Whether determiner ``det`` fits noun ``n``."""
    return not ("x" in n.tags and det in POSSESSIVES)


def noun_subjects() -> Iterator[Subject]:
    """Definite noun-phrase subjects: 'the dog', 'mes clés'..."""
    for det, n, plural in product(("the", "my", "ton", "votre", "this"), NOUNS, (0, 1)):
        if determines(det, n):
            en, fr = noun_phrase(det, n, bool(plural))
            yield Subject(en, fr, 2 + 3 * plural, n.fem, n.tags, pronoun=False)


def objects() -> Iterator[tuple[str, Noun, bool, str]]:
    """(determiner, noun, plural, prenominal adjective) of every object noun phrase."""
    for det, n, plural in product(DETS, NOUNS, (False, True)):
        if not (det == "a" and plural) and determines(det, n):
            adjectives = filter(str.isupper, n.tags) if det in ("a", "the", "this") else ""
            for a in ("", *adjectives):
                yield det, n, plural, a


def questions(s: Subject, verb_fr: str, rest: str) -> list[str]:
    """French yes/no questions: (complex) inversion and est-ce que."""
    pron = s.fr if s.pronoun else ("il", "elle", "ils", "elles")[2 * (s.person == 5) + s.fem]
    link = "-t-" if verb_fr[-1] in "ae" and pron in ("il", "elle") else "-"
    inverted = f"{verb_fr}{link}{pron}" if s.pronoun else f"{s.fr} {verb_fr}{link}{pron}"
    return [f"{inverted} {rest}", f"est-ce que {s.fr} {verb_fr} {rest}"]


def be_adjective(subjects: Iterable[Subject]) -> Iterator[Pair]:
    """'I am not very tired.' / 'Je ne suis pas très fatigué.', and questions."""
    for s, a, adv in product(subjects, ADJECTIVES, ("", *ADVERBS)):
        if set(a.tags) & set(s.tags) and (not adv or adv in a.adverbs):
            p, (en_adv, fr_adv) = s.person, ADVERBS.get(adv, ("", ""))
            en, fr = f"{en_adv} {a.en}", f"{fr_adv} {a.fr[2 * (p >= 3) + s.fem]}"
            yield pair(f"{s.en} {BE[p]} {en}", f"{s.fr} {ETRE[p]} {fr}", ".")
            if adv != "l":
                yield pair(f"{s.en} {BE[p]} not {en}", f"{s.fr} ne {ETRE[p]} pas {fr}", ".")
            for question in questions(s, ETRE[p], fr) if p else []:
                yield pair(f"{BE[p]} {s.en} {en}", question, "?")


def english_verb(s: Subject, v: Verb) -> tuple[str, str, str]:
    """English statement, negation and question openings, e.g. 'he sees', 'does he see'."""
    p = s.person
    if v.prog:
        return f"{s.en} {BE[p]} {v.ing}", f"{s.en} {BE[p]} not {v.ing}", f"{BE[p]} {s.en} {v.ing}"
    pos = v.en3 if p == 2 else v.en
    return f"{s.en} {pos}", f"{s.en} {DO[p]} not {v.en}", f"{DO[p]} {s.en} {v.en}"


def takes(v: Verb, det: str, n: Noun, person: int) -> bool:
    """Whether verb ``v`` takes this object with a subject (or addressee) of ``person``."""
    fits = bool(set(v.objects) & set(n.tags)) and (v.indefinite or det != "a")
    return fits and (det, person) not in CLASH


def transitive(v: Verb) -> Iterator[Pair]:
    """'She does not see the dog.' / 'Elle ne voit pas le chien.', and questions."""
    for s, (det, n, plural, a) in product(PERSONS, objects()):
        if takes(v, det, n, s.person):
            en, fr = noun_phrase(det, n, plural, a)
            fr_neg = noun_phrase(det, n, plural, a, neg=True)[1]
            if v.en == "like" and det == "the" and plural:  # generic: "J'aime les chats."
                en = en.removeprefix("the ")
            (en_pos, en_neg, en_q), verb_fr = english_verb(s, v), v.fr[s.person]
            yield pair(f"{en_pos} {en}", f"{s.fr} {verb_fr} {fr}", ".")
            yield pair(f"{en_neg} {en}", f"{s.fr} ne {verb_fr} pas {fr_neg}", ".")
            for question in questions(s, verb_fr, fr) if s.person in (1, 2, 4, 5) else []:
                yield pair(f"{en_q} {en}", question, "?")


def imperative(v: Verb) -> Iterator[Pair]:
    """'Do not open the window!' / 'N'ouvre pas la fenêtre !'."""
    for (det, n, plural, a), person in product(objects(), (1, 4)):
        if takes(v, det, n, person):
            en, fr = noun_phrase(det, n, plural, a)
            form = v.fr[person]
            form = form[:-1] if form.endswith("es") else form  # tu cherches -> cherche !
            yield pair(f"{v.en} {en}", f"{form} {fr}", "!")
            if det != "a":  # "Ne lis pas de livre !" is odd
                yield pair(f"do not {v.en} {en}", f"ne {form} pas {fr}", "!")


def location(subjects: Iterable[Subject]) -> Iterator[Pair]:
    """'The cat is not in the kitchen.' / 'Le chat n'est pas dans la cuisine.', 'Where is Tom?'."""
    for s in subjects:
        p = s.person
        where = f"où {ETRE[p]}-{s.fr}" if s.pronoun else f"où {ETRE[p]} {s.fr}"
        yield pair(f"where {BE[p]} {s.en}", where, "?")
        for en, fr, tags in PLACES:
            if set(tags) & set(s.tags):
                yield pair(f"{s.en} {BE[p]} {en}", f"{s.fr} {ETRE[p]} {fr}", ".")
                yield pair(f"{s.en} {BE[p]} not {en}", f"{s.fr} ne {ETRE[p]} pas {fr}", ".")
                for question in questions(s, ETRE[p], fr) if p else []:
                    yield pair(f"{BE[p]} {s.en} {en}", question, "?")


def there_is() -> Iterator[Pair]:
    """'There is a cat in the kitchen.' / 'Il y a un chat dans la cuisine.'."""
    for n, plural, (en_place, fr_place, tags) in product(NOUNS, (False, True), PLACES):
        if set(tags) & set(n.tags):
            en, fr = noun_phrase("a", n, plural)
            fr_neg, be = noun_phrase("a", n, plural, neg=True)[1], "are" if plural else "is"
            yield pair(f"there {be} {en} {en_place}", f"il y a {fr} {fr_place}", ".")
            no_en, no_fr = f"there {be} no {n.en[plural]}", f"il ne y a pas {fr_neg}"
            yield pair(f"{no_en} {en_place}", f"{no_fr} {fr_place}", ".")
            yield pair(f"{be} there {en} {en_place}", f"y a-t-il {fr} {fr_place}", "?")


def this_is() -> Iterator[Pair]:
    """'This is not an old car.' / 'Ce n'est pas une vieille voiture.', and questions."""
    for det, n, plural, a in objects():
        if det != "this":
            en, fr = noun_phrase(det, n, plural, a)
            dem, be, etre = ("these", "are", "sont") if plural else ("this", "is", "est")
            yield pair(f"{dem} {be} {en}", f"ce {etre} {fr}", ".")
            yield pair(f"{dem} {be} not {en}", f"ce ne {etre} pas {fr}", ".")
            for question in [f"est-ce que ce {etre}"] + ([] if plural else ["est-ce"]):
                yield pair(f"{be} {dem} {en}", f"{question} {fr}", "?")


NOUN_SUBJECTS = tuple(noun_subjects())
# (pattern, share of the sample); transitive verbs and imperatives share theirs equally.
PATTERNS: tuple[tuple[Callable[[], Iterator[Pair]], float], ...] = (
    (partial(be_adjective, PERSONS), 0.16),
    (partial(be_adjective, NOUN_SUBJECTS), 0.08),
    (partial(location, PERSONS), 0.08),
    (partial(location, NOUN_SUBJECTS), 0.08),
    (there_is, 0.06),
    (this_is, 0.08),
    *((partial(transitive, v), 0.36 / len(VERBS)) for v in VERBS),
    *((partial(imperative, v), 0.10 / len(PROGRESSIVE)) for v in PROGRESSIVE),
)


def short(p: Pair) -> bool:
    """Whether both sides have at most MAX_WORDS normalised words."""
    return all(len(normalize_tutorial(s).split()) <= MAX_WORDS for s in p)


def generate(n_pairs: int = 4000, seed: int = 0) -> list[Pair]:
    """A deterministic sample of about ``n_pairs`` (english, french) pairs, shortest first."""
    rng, pairs = random.Random(seed), set()
    for pattern, weight in PATTERNS:
        pool = sorted({p for p in pattern() if short(p)})
        pairs.update(rng.sample(pool, min(len(pool), round(n_pairs * weight))))
    return sorted(pairs, key=lambda p: (len(p[0]), p))


def write(path: str | Path, pairs: list[Pair]) -> None:
    """Write pairs in the tutorial's ``English<TAB>French`` format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{en}\t{fr}\n" for en, fr in pairs), encoding="utf-8", newline="\n")


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    write(out, pairs := generate())
    print(f"wrote {len(pairs)} pairs to {out}")
