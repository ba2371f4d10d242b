"""Generated content's building blocks (API.md "Generated content", DESIGN §10): the template
sandbox, feeds and the items each post has taken, and the language model. The executor's
generation lane calls them; nothing here touches jobs."""
