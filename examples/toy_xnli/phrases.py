"""Parallel phrase tables of the toy XNLI data: index i means the same thing in every language."""

SUBJECTS = {
    "en": ["The man", "The woman", "The boy", "The girl", "The teacher", "The doctor", "The old man", "The student"],
    "de": ["Der Mann", "Die Frau", "Der Junge", "Das Mädchen", "Der Lehrer", "Die Ärztin", "Der alte Mann", "Der Student"],
    "fr": ["L'homme", "La femme", "Le garçon", "La fille", "Le professeur", "Le médecin", "Le vieil homme", "L'étudiant"],
    "es": ["El hombre", "La mujer", "El niño", "La niña", "El profesor", "La doctora", "El anciano", "El estudiante"],
    "zh": ["那个男人", "那个女人", "那个男孩", "那个女孩", "那位老师", "那位医生", "那位老人", "那个学生"],
}
ACTIONS = {
    "en": ["is reading a book", "is eating an apple", "is playing the guitar", "is drinking coffee",
           "is writing a letter", "is painting a picture", "is singing a song", "is cooking dinner"],
    "de": ["liest ein Buch", "isst einen Apfel", "spielt Gitarre", "trinkt Kaffee",
           "schreibt einen Brief", "malt ein Bild", "singt ein Lied", "kocht das Abendessen"],
    "fr": ["lit un livre", "mange une pomme", "joue de la guitare", "boit du café",
           "écrit une lettre", "peint un tableau", "chante une chanson", "prépare le dîner"],
    "es": ["lee un libro", "come una manzana", "toca la guitarra", "bebe café",
           "escribe una carta", "pinta un cuadro", "canta una canción", "cocina la cena"],
    "zh": ["看书", "吃苹果", "弹吉他", "喝咖啡", "写信", "画画", "唱歌", "做晚饭"],
}
PLACES = {
    "en": ["in the park", "in the kitchen", "at the station", "in the garden",
           "in the library", "on the beach", "in the office", "at school"],
    "de": ["im Park", "in der Küche", "am Bahnhof", "im Garten",
           "in der Bibliothek", "am Strand", "im Büro", "in der Schule"],
    "fr": ["dans le parc", "dans la cuisine", "à la gare", "dans le jardin",
           "à la bibliothèque", "sur la plage", "au bureau", "à l'école"],
    "es": ["en el parque", "en la cocina", "en la estación", "en el jardín",
           "en la biblioteca", "en la playa", "en la oficina", "en la escuela"],
    "zh": ["在公园里", "在厨房里", "在车站", "在花园里", "在图书馆里", "在海滩上", "在办公室里", "在学校里"],
}
# kind -> (label, template). {S} subject, {A} action, {P} place; "other_*" kinds swap in another one.
TEMPLATES = {
    "en": {
        "premise": (None, "{S} {A} {P}."),
        "same_place": ("entailment", "{S} is {P}."),
        "someone_same_action": ("entailment", "Someone {A}."),
        "not_same_place": ("contradiction", "{S} is not {P}."),
        "nobody_same_action": ("contradiction", "Nobody {A}."),
        "other_place": ("contradiction", "{S} {A} {P}."),
        "with_friend": ("neutral", "{S} {A} {P} with a friend."),
        "someone_other_action": ("neutral", "Someone else {A} too."),
    },
    "de": {
        "premise": (None, "{S} {A} {P}."),
        "same_place": ("entailment", "{S} ist {P}."),
        "someone_same_action": ("entailment", "Jemand {A}."),
        "not_same_place": ("contradiction", "{S} ist nicht {P}."),
        "nobody_same_action": ("contradiction", "Niemand {A}."),
        "other_place": ("contradiction", "{S} {A} {P}."),
        "with_friend": ("neutral", "{S} {A} mit einem Freund {P}."),
        "someone_other_action": ("neutral", "Jemand anderes {A} auch."),
    },
    "fr": {
        "premise": (None, "{S} {A} {P}."),
        "same_place": ("entailment", "{S} est {P}."),
        "someone_same_action": ("entailment", "Quelqu'un {A}."),
        "not_same_place": ("contradiction", "{S} n'est pas {P}."),
        "nobody_same_action": ("contradiction", "Personne ne {A}."),
        "other_place": ("contradiction", "{S} {A} {P}."),
        "with_friend": ("neutral", "{S} {A} {P} avec un ami."),
        "someone_other_action": ("neutral", "Quelqu'un d'autre {A} aussi."),
    },
    "es": {
        "premise": (None, "{S} {A} {P}."),
        "same_place": ("entailment", "{S} está {P}."),
        "someone_same_action": ("entailment", "Alguien {A}."),
        "not_same_place": ("contradiction", "{S} no está {P}."),
        "nobody_same_action": ("contradiction", "Nadie {A}."),
        "other_place": ("contradiction", "{S} {A} {P}."),
        "with_friend": ("neutral", "{S} {A} {P} con un amigo."),
        "someone_other_action": ("neutral", "Otra persona también {A}."),
    },
    "zh": {
        "premise": (None, "{S}{P}{A}。"),
        "same_place": ("entailment", "{S}{P}。"),
        "someone_same_action": ("entailment", "有人在{A}。"),
        "not_same_place": ("contradiction", "{S}不{P}。"),
        "nobody_same_action": ("contradiction", "没有人在{A}。"),
        "other_place": ("contradiction", "{S}{P}{A}。"),
        "with_friend": ("neutral", "{S}和一个朋友{P}{A}。"),
        "someone_other_action": ("neutral", "另外一个人也在{A}。"),
    },
}
