"""Host adapters: translate host formats to engine calls and back. They never import each other."""
