"""One job's content made from its post's template, feed and model (API.md "Generated
content"): the order of the steps lives here, for the executor's generation lane and for
`POST /posts/preview`.

The feed item is taken first (claimed for the occurrence, so every account's job and every
retry of it gets the same one), then the model's text, checked against the final text's
platform limits before it is used, then the template around it, then the picture, stored as
media. The result is checked once more as a whole, as the API checks written content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp

from shared.generation import source, template
from shared.generation.errors import GenerationFailed
from shared.generation.feeds import FeedItem, Fetched, fetch
from shared.generation.llm import LanguageModel, data_variables
from shared.media.fetch import fetch_session
from shared.models import Content, ContentState, Media
from shared.providers.base import Problems
from shared.store import Doc

if TYPE_CHECKING:
    from shared.runtime import Runtime


@dataclass(frozen=True)
class Composed:
    """What a job will publish, the state it is frozen in, and how it was made (`record`:
    model, prompt, token usage, feed item, picture)."""

    content: Content
    state: ContentState
    record: Doc
    #: The content's problems against the platform (only a preview keeps them: a generation
    #: with problems fails).
    problems: Problems


def occurrence_key(scheduled_for: datetime) -> str:
    """The name an occurrence claims its feed item under: shared by its accounts' jobs."""
    return scheduled_for.isoformat()


def _local(post: Doc, scheduled_for: datetime) -> datetime:
    return scheduled_for.astimezone(ZoneInfo(post["schedule"].get("timezone", "UTC")))


class Composer:
    """The node's language model and feed session; `close` when done."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.model = LanguageModel.from_settings(rt.settings)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self.model is not None:
            await self.model.close()
        if self._session is not None:
            await self._session.close()

    def _feeds(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = fetch_session(self._rt.settings.allow_private_urls)
        return self._session

    async def fetch_feed(self, url: str) -> Fetched:
        """The feed now (a post's creation sees its items, a preview samples them)."""
        return await fetch(self._feeds(), url, allow_private=self._rt.settings.allow_private_urls)

    async def compose(self, post: Doc, account: Doc, scheduled_for: datetime, *,
                      preview: bool = False) -> Composed | None:
        """The content of the post's occurrence at `scheduled_for` for `account`; None when
        its feed has no new item (the occurrence is skipped). GenerationFailed when it cannot
        be made; permanent when the result breaks a limit. A `preview` claims no item (it
        samples the feed's newest), asks for no picture and stores nothing; it returns the
        content's problems instead of failing on them."""
        rt = self._rt
        content = Content.model_validate(post["content"])
        variables: dict[str, Any] = {
            "occurrence": _local(post, scheduled_for),
            "account": {"name": account.get("name", ""), "platform": account["platform"]}}
        item = await self._item(post, content, scheduled_for, preview)
        if content.source is not None:
            if item is None:
                return None
            variables["item"] = item.variables()
        record: Doc = {"at": rt.clock.now_dt(), "model": None, "prompt": None, "usage": {},
                       "item": None if item is None else {
                           "key": item.key, "title": item.title, "link": item.link}}
        provider = rt.provider(account["platform"])
        config = account.get("config", {})

        def final_text(generated: str | None) -> str:
            if content.template is None:
                return generated if generated is not None else content.text
            return template.render(content.template, {
                **variables, **({"generated": generated} if generated is not None else {})})

        async def text_problems(generated: str) -> Problems:
            return await provider.check_content(
                content.written(final_text(generated), []), config)

        generated = None
        if content.generate is not None and content.generate.prompt is not None:
            model = self._model()
            prompt = template.render(content.generate.prompt, {
                **variables, **({"item": data_variables(variables["item"])} if item else {})})
            answer = await model.generate(prompt, limit=text_problems)
            generated = answer.text
            record.update(model=answer.model, prompt=prompt, usage=answer.usage)
        text = final_text(generated)
        media: list[Media] = []
        if content.generate is not None and content.generate.image is not None:
            image_prompt = template.render(content.generate.image, variables)
            record["image_prompt"] = image_prompt
            if not preview:
                picture = await self._model().image(image_prompt)
                stored = await rt.media.save(_once(picture.data))
                record["image_media_id"] = stored["_id"]
                media.append(Media(id=stored["_id"]))
        made = content.written(text, media) if text.strip() or media or content.media \
            else None
        if made is None:
            raise GenerationFailed("the content came out empty", permanent=True)
        infos, problems = await rt.media.describe(made)
        problems += await provider.check_content(made, config, infos)
        if problems and not preview:
            described = "; ".join(f"{where}: {message}" for where, message in problems)
            raise GenerationFailed(f"the generated content breaks a limit: {described}",
                                   permanent=True)
        state = ContentState.AWAITING_APPROVAL if content.approval_required \
            else ContentState.GENERATED
        return Composed(made, state, record, problems)

    def _model(self) -> LanguageModel:
        if self.model is None:
            raise GenerationFailed("no language model is configured (HERALD_LLM_BASE_URL, "
                                   "HERALD_LLM_MODEL)", permanent=True)
        return self.model

    async def _item(self, post: Doc, content: Content, scheduled_for: datetime,
                    preview: bool) -> FeedItem | None:
        if content.source is None:
            return None
        url = str(content.source.feed)
        if preview:
            items = (await self.fetch_feed(url)).items or []
            return max(items, key=lambda i: (i.published is not None, i.published, -i.position),
                       default=None)
        return await source.next_item(
            self._rt.feed_items, self._feeds(), post["_id"], url, occurrence_key(scheduled_for),
            allow_private=self._rt.settings.allow_private_urls)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
