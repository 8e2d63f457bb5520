"""The bundled calibration set of int8 smoothing: short queries and passages on varied subjects.

Written for this package (no third-party text, so no licence travels with it). Smoothing reads
only each channel's largest activation from these texts (see :mod:`.smoothing`); what matters is
ordinary English of the lengths rankers see, not the subjects. Measured on all-MiniLM-L6-v2: 64
texts of WikiQA or SQuAD set scales as good as 256 of them (mean cosine to fp32 within 1e-3).
"""

from __future__ import annotations

CALIBRATION_PAIRS: tuple[tuple[str, str], ...] = (
    (
        "how do vaccines train the immune system",
        "A vaccine exposes the immune system to a harmless piece or weakened form of a pathogen. B cells "
        "learn to make antibodies against it, and memory cells remain for years, so a later infection is "
        "met by a faster and stronger response.",
    ),
    (
        "when did the berlin wall fall",
        "The Berlin Wall was opened on the night of 9 November 1989, after East German authorities announced "
        "that citizens could cross the border freely. Demolition continued through 1990, the year Germany "
        "was reunified.",
    ),
    (
        "what is the difference between a list and a tuple in python",
        "In Python a list is mutable: items can be added, removed or replaced after it is created. A tuple "
        "is immutable, which makes it hashable when its items are, so tuples can serve as dictionary keys.",
    ),
    (
        "why is the sky blue",
        "Sunlight is scattered by the molecules of the atmosphere, and shorter wavelengths scatter far more "
        "than longer ones. Blue light is therefore spread across the whole sky, while the sun itself looks "
        "slightly yellow.",
    ),
    (
        "best temperature to bake sourdough bread",
        "Most bakers preheat the oven with a Dutch oven inside to about 250 C, bake the loaf covered for 20 "
        "minutes so the steam lets it rise, then uncover it and lower the heat to 230 C until the crust is "
        "deep brown.",
    ),
    (
        "who wrote pride and prejudice",
        "Pride and Prejudice is a novel by Jane Austen, published in 1813. It follows Elizabeth Bennet as "
        "she deals with manners, upbringing and marriage among the landed gentry of early nineteenth-century "
        "England.",
    ),
    (
        "how does compound interest work",
        "With compound interest, the interest earned in each period is added to the principal, so the next "
        "period's interest is computed on a larger amount. Over long horizons the balance grows "
        "exponentially rather than linearly.",
    ),
    (
        "symptoms of iron deficiency",
        "Iron deficiency often causes tiredness, pale skin, shortness of breath during exercise, brittle "
        "nails and headaches. A blood test measuring ferritin and haemoglobin confirms it.",
    ),
    (
        "what is the tallest mountain in africa",
        "Mount Kilimanjaro in Tanzania is the highest mountain in Africa, rising to 5,895 metres above sea "
        "level. It is a dormant volcano with three cones: Kibo, Mawenzi and Shira.",
    ),
    (
        "how many players are on a rugby union team",
        "A rugby union side fields fifteen players: eight forwards, who contest scrums and lineouts, and "
        "seven backs, who do most of the running and kicking. Up to eight replacements may be named.",
    ),
    (
        "what causes inflation",
        "Inflation rises when demand for goods and services outpaces what the economy can supply, when "
        "production costs such as energy or wages climb, or when the money supply grows faster than output.",
    ),
    (
        "git undo last commit but keep changes",
        "Run git reset --soft HEAD~1 to move the branch back by one commit while keeping the changes staged. "
        "Use --mixed instead to keep them in the working tree but unstaged.",
    ),
    (
        "how do bees make honey",
        "Worker bees collect nectar from flowers and store it in a special stomach, where enzymes begin to "
        "break down its sugars. Back in the hive they pass it mouth to mouth, deposit it in wax cells and "
        "fan it with their wings until most of the water evaporates.",
    ),
    (
        "capital of australia",
        "Canberra is the capital city of Australia. It was chosen in 1908 as a compromise between Sydney "
        "and Melbourne, the two largest cities, and was built as a planned city from 1913.",
    ),
    (
        "what does a transformer model do in machine learning",
        "A transformer processes a sequence with layers of self-attention, in which every token weighs every "
        "other token, followed by feed-forward networks. It replaced recurrent networks for most language "
        "tasks because it trains in parallel.",
    ),
    (
        "can dogs eat grapes",
        "No. Grapes and raisins can cause sudden kidney failure in dogs, and the toxic dose varies widely "
        "between animals. A dog that has eaten them should be seen by a vet at once.",
    ),
    (
        "what is the speed of light",
        "Light travels through a vacuum at exactly 299,792,458 metres per second, a value fixed by the "
        "definition of the metre. In water or glass it moves more slowly, which is why lenses bend it.",
    ),
    (
        "rules of chess castling",
        "Castling moves the king two squares towards a rook and places that rook on the square the king "
        "crossed. Neither piece may have moved before, the squares between them must be empty, and the king "
        "may not be in, pass through or land in check.",
    ),
    (
        "how long does it take to get a passport",
        "Standard passport applications are usually processed within six to eight weeks, though times vary "
        "by season and country. Expedited services can shorten this to a few days for an extra fee.",
    ),
    (
        "what is photosynthesis",
        "Photosynthesis is the process by which plants, algae and some bacteria use light energy to turn "
        "carbon dioxide and water into glucose and oxygen. It takes place mainly in the chloroplasts of "
        "leaf cells.",
    ),
    (
        "who painted the starry night",
        "The Starry Night was painted by Vincent van Gogh in June 1889, from the window of his room at the "
        "asylum in Saint-Remy-de-Provence. It hangs in the Museum of Modern Art in New York.",
    ),
    (
        "difference between weather and climate",
        "Weather describes the state of the atmosphere over hours or days, such as rain or wind on a given "
        "afternoon. Climate is the average of weather over decades for a region.",
    ),
    (
        "how to lower blood pressure naturally",
        "Regular aerobic exercise, less salt, more fruit and vegetables, limited alcohol and a healthy weight "
        "can each lower blood pressure by several points. Doctors still recommend checking it regularly.",
    ),
    (
        "what year did the first man land on the moon",
        "Neil Armstrong and Buzz Aldrin landed on the Moon on 20 July 1969 during NASA's Apollo 11 mission, "
        "while Michael Collins orbited above in the command module.",
    ),
    (
        "what is a sql join",
        "A join combines rows from two tables on a related column. An inner join keeps only matching rows, "
        "while a left join keeps every row of the first table and fills missing matches with NULL.",
    ),
    (
        "how do earthquakes happen",
        "Earthquakes occur when stress built up along a fault is suddenly released and the rocks on either "
        "side slip past each other. The energy travels outward as seismic waves.",
    ),
    (
        "origin of the olympic games",
        "The ancient Olympic Games were held at Olympia in Greece from 776 BC in honour of Zeus. The modern "
        "Games were revived by Pierre de Coubertin, and the first were held in Athens in 1896.",
    ),
    (
        "what is a mortgage",
        "A mortgage is a loan used to buy property, secured against that property. The borrower repays it "
        "with interest over a term such as 25 years, and the lender may repossess the home if payments stop.",
    ),
    (
        "how many bones are in the human body",
        "An adult human skeleton usually has 206 bones. Babies are born with around 270, and many of them "
        "fuse together during growth, such as those of the skull and the base of the spine.",
    ),
    (
        "what language is spoken in brazil",
        "Portuguese is the official and most widely spoken language of Brazil, a legacy of Portuguese "
        "colonisation. Many indigenous languages are also spoken, along with German and Italian dialects.",
    ),
    (
        "why do cats purr",
        "Cats purr when content, but also when stressed, injured or giving birth. The sound comes from rapid "
        "movements of the muscles of the larynx, and its low frequencies may help healing.",
    ),
    (
        "how does a refrigerator keep food cold",
        "A refrigerator pumps a refrigerant through a closed loop. It evaporates inside the cabinet, "
        "absorbing heat, and a compressor pushes it to coils at the back, where it condenses and releases "
        "that heat into the room.",
    ),
)
"""(query, relevant passage) pairs: a cross-encoder calibrates on them and on mismatched pairs, a
bi-encoder or ColBERT model on the queries and passages one by one."""
