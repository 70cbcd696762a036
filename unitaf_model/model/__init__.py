"""Network parts: the projector, the UniTalker decoder, the expression residual, vertex rigs,
and UniTAF that joins them."""
