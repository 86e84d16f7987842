"""A synthetic, WikiText-2-shaped corpus, generated deterministically from a seed.

Layout follows wikitext-2-raw-v1 row by row: ``" = Title = \\n"`` headings, ``" = = Section = = \\n"``
subheadings, paragraph rows and empty rows between them, with WikiText's spaced punctuation.

The text has structure a language model can learn: a fixed set of invented people and cities whose
facts (birth year, home city, river, occupation, best-known work) recur across articles. The
pretraining portion describes a disjoint pool of entities, and the fine-tuning splits share one pool,
so the test split restates facts that only the fine-tuning train split teaches.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

# WikiText-2 raw row counts (train, validation, test), which the splits are scaled from.
WIKITEXT2_ROWS = {"train": 36718, "validation": 3760, "test": 4358}

_ONSETS = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "st", "th", "tr", "sh", "ch", "gl"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ia", "ou", "ei"]
_CODAS = ["", "", "n", "r", "s", "l", "m", "th", "nd", "rk", "x"]

OCCUPATIONS = ["painter", "composer", "architect", "novelist", "physicist", "sculptor", "poet",
               "astronomer", "botanist", "engineer", "historian", "cartographer"]
WORK_KINDS = {"painter": "painting", "composer": "symphony", "architect": "cathedral",
              "novelist": "novel", "physicist": "theorem", "sculptor": "statue", "poet": "poem",
              "astronomer": "catalogue", "botanist": "herbarium", "engineer": "bridge",
              "historian": "chronicle", "cartographer": "atlas"}


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(syllables)).capitalize()


@dataclass
class City:
    name: str
    country: str
    river: str
    founded: int
    population: int


@dataclass
class Person:
    name: str
    born: int
    city: City
    occupation: str
    work: str
    work_year: int
    pronoun: str
    mentor: "Person | None" = None
    students: list = field(default_factory=list)


@dataclass
class EntityPool:
    cities: list[City]
    people: list[Person]


def make_pool(rng: random.Random, n_cities: int, n_people: int, used: set[str]) -> EntityPool:
    def fresh(syllables: int) -> str:
        while True:
            name = _word(rng, syllables)
            if name not in used:
                used.add(name)
                return name

    countries = [fresh(3) for _ in range(max(2, n_cities // 4))]
    cities = [City(fresh(2), rng.choice(countries), fresh(2), rng.randint(900, 1800),
                   rng.randint(2, 900) * 1000) for _ in range(n_cities)]
    people = []
    for _ in range(n_people):
        occupation = rng.choice(OCCUPATIONS)
        born = rng.randint(1700, 1950)
        people.append(Person(f"{fresh(2)} {fresh(2)}", born, rng.choice(cities), occupation,
                             f"{fresh(2)} {WORK_KINDS[occupation].capitalize()}",
                             born + rng.randint(20, 50), rng.choice(["He", "She"])))
    for person in people:
        elders = [p for p in people if p.born < person.born - 10]
        if elders:
            person.mentor = rng.choice(elders)
            person.mentor.students.append(person)
    return EntityPool(cities, people)


def _number(n: int) -> str:
    """WikiText writes thousands separators as ' @,@ '."""
    return f"{n:,}".replace(",", " @,@ ")


def _person_intro(rng, p: Person) -> str:
    return rng.choice([
        f"{p.name} ( born {p.born} ) was a {p.occupation} from {p.city.name} , {p.city.country} .",
        f"{p.name} was a {p.city.country} {p.occupation} , born in {p.city.name} in {p.born} .",
        f"{p.name} ( {p.born} ) was a {p.occupation} born in the city of {p.city.name} .",
    ])


def _city_facts(rng, c: City) -> str:
    return rng.choice([
        f"{c.name} lies on the {c.river} river in {c.country} and was founded in {c.founded} .",
        f"{c.name} , a city of {c.country} on the {c.river} river , was founded in {c.founded} .",
        f"Founded in {c.founded} , {c.name} stands on the banks of the {c.river} in {c.country} .",
    ])


_POSSESSIVE = {"He": "his", "She": "her"}


def _work_sentence(rng, p: Person) -> str:
    return rng.choice([
        f"{p.pronoun} is best known for the {p.work} , completed in {p.work_year} .",
        f"The {p.work} ( {p.work_year} ) is regarded as {_POSSESSIVE[p.pronoun]} most important work .",
        f"In {p.work_year} {p.name.split()[0]} completed the {p.work} , which made {p.name.split()[1]} famous .",
    ])


def person_article(rng: random.Random, p: Person, finetune_style: bool) -> list[list[str]]:
    """An article as a list of sections; each section is [heading or None, paragraph, ...]."""
    lead = [None, " ".join([_person_intro(rng, p), _work_sentence(rng, p)])]
    early = ["Early life", " ".join([
        f"{p.name.split()[0]} grew up in {p.city.name} .", _city_facts(rng, p.city),
        f"The family moved there before {p.born + rng.randint(3, 12)} ."])]
    career = [f"{p.name.split()[0]} worked as a {p.occupation} for many years ."]
    if p.mentor is not None:
        career.append(f"{p.pronoun} studied under {p.mentor.name} , the {p.mentor.occupation} "
                      f"from {p.mentor.city.name} .")
    career.append(_work_sentence(rng, p))
    sections = [lead, early, ["Career", " ".join(career)]]
    if finetune_style:
        # Fine-tuning articles carry a section type the pretraining portion never shows.
        reception = [f"Critics in {p.city.country} praised the {p.work} on its release in {p.work_year} .",
                     f"The {p.work} was exhibited in {p.city.name} and later in {rng.choice(['Varn', 'Olt', 'Keth'])}ia ."]
        if p.students:
            names = " and ".join(s.name for s in p.students[:2])
            reception.append(f"{p.pronoun} taught {names} .")
        sections.append(["Reception", " ".join(reception)])
    return sections


def city_article(rng: random.Random, c: City, people: list[Person], finetune_style: bool) -> list[list[str]]:
    natives = [p for p in people if p.city is c]
    sections = [[None, _city_facts(rng, c) + f" It has a population of {_number(c.population)} ."],
                ["Geography", f"The {c.river} river runs through {c.name} . " + _city_facts(rng, c)]]
    if natives:
        lines = [f"{p.name} , the {p.occupation} , was born in {c.name} in {p.born} ." for p in natives[:4]]
        sections.append(["Notable people", " ".join(lines)])
    if finetune_style:
        sections.append(["Culture", f"The people of {c.name} celebrate the founding of the city in {c.founded} "
                                    f"with a festival on the {c.river} ."])
    return sections


def article_rows(title: str, sections: list[list[str]]) -> list[str]:
    """Render one article as WikiText-2 raw rows (empty rows around every heading and paragraph)."""
    rows = ["", f" = {title} = \n", ""]
    for heading, *paragraphs in sections:
        if heading is not None:
            rows += [f" = = {heading} = = \n", ""]
        for paragraph in paragraphs:
            rows += [f" {paragraph} \n", ""]
    return rows


def _article_stream(rng: random.Random, pool: EntityPool, finetune_style: bool):
    """Endless stream of articles; every entity gets an article before any repeats."""
    while True:
        items = [("person", p) for p in pool.people] + [("city", c) for c in pool.cities]
        rng.shuffle(items)
        for kind, entity in items:
            if kind == "person":
                yield article_rows(entity.name, person_article(rng, entity, finetune_style))
            else:
                yield article_rows(entity.name, city_article(rng, entity, pool.people, finetune_style))


def _take_rows(stream, n_rows: int) -> list[str]:
    rows: list[str] = []
    while len(rows) < n_rows:
        rows.extend(next(stream))
    return rows[:n_rows]


def split_row_targets(scale: float) -> dict[str, int]:
    """WikiText-2's row counts scaled by ``scale``, at least 10 rows each."""
    return {split: max(10, round(n * scale)) for split, n in WIKITEXT2_ROWS.items()}


def generate_corpus(seed: int, scale: float, pretrain_rows: int, people: int, cities: int) -> dict[str, list[str]]:
    """Return {'pretrain', 'train', 'validation', 'test'} → list of raw rows.

    ``people`` and ``cities`` size each entity pool; the pretraining pool and the fine-tuning pool
    are disjoint, so the base model cannot know the fine-tuning facts.
    """
    rng = random.Random(seed)
    used: set[str] = set()
    pretrain_pool = make_pool(rng, cities, people, used)
    finetune_pool = make_pool(rng, cities, people, used)
    targets = split_row_targets(scale)
    finetune_stream = _article_stream(rng, finetune_pool, finetune_style=True)
    corpus = {"pretrain": _take_rows(_article_stream(rng, pretrain_pool, finetune_style=False), pretrain_rows)}
    for split in ("train", "validation", "test"):
        corpus[split] = _take_rows(finetune_stream, targets[split])
    return corpus
