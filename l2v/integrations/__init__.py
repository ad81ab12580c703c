"""The embedding interfaces people already use, over `l2v.load(...)`: each module imports its framework
only when used and raises `OptionalDependencyError` naming the extra when it is missing.

    from l2v.integrations.langchain import L2VEmbeddings      # pip install 'l2v-export[langchain]'
    from l2v.integrations.llamaindex import L2VEmbedding      # pip install 'l2v-export[llamaindex]'
    from l2v.integrations.mteb import L2VMtebEncoder          # pip install 'l2v-export[mteb]'

Queries and documents get the model's prompts the way sentence-transformers' `encode_query` /
`encode_document` pick them (`roles.py`).
"""
