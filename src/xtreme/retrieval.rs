//! BUCC and Tatoeba straight from the encoder's embeddings (being written).
