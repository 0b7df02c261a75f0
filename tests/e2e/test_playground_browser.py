"""The playground in headless Chromium against the real server and the real trained models.

Each panel is used as a person would (a drawn stroke, a sample photo and an upload, a
typed sentence, the tensor form, the live view under a short bounded load); the request
forms the page shows are then run for real (curl, the Python client, the gRPC call)
and must give the answer the page showed. A screenshot of each panel goes to this run's
output folder (see tests/fixtures/browser.py).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium.common.exceptions import StaleElementReferenceException

from serving.rest.playground import PAGE_DIR
from tests.fixtures.browser import (
    Server,
    bounded_load,
    console_errors,
    run_grpcurl_form,
    run_python,
    run_shell,
    start_server,
    stop_server,
    wait,
)
from tests.fixtures.servers import REPO_ROOT

pytestmark = pytest.mark.slow
SAMPLES = PAGE_DIR / "samples"


@pytest.fixture(scope="module")
def server(real_model_repository: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    running = start_server(real_model_repository, tmp_path_factory.mktemp("server") / "log")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def page(browser: Any, server: Server) -> Any:
    browser.get(server.url + "/")
    wait(browser, lambda d: "Serving digit v1" in by_id(d, "server-status").text,
         "the model list")
    return browser


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def css(root: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return root.find_element(By.CSS_SELECTOR, selector)


def css_all(root: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return root.find_elements(By.CSS_SELECTOR, selector)


def shown_probabilities(panel: Any) -> dict[str, float]:
    """label -> the percentage the page shows."""
    return {css(li, ".label").text: float(css(li, ".pct").text.rstrip("%"))
            for li in css_all(panel, ".bars li")}


def form(panel: Any, name: str) -> str:
    return css(panel, f"[data-form={name}] code").get_attribute("textContent")


def facts_of(panel: Any) -> str:
    return css(panel, ".facts").text


def assert_same_answer(page_probs: dict[str, float], answer: dict[str, Any]) -> None:
    """An answer (JSON from the task endpoint) equals what the page shows (0.1% steps)."""
    got = {t["label"]: 100 * t["probability"] for t in answer["predictions"][0]["top"]}
    assert set(got) == set(page_probs)
    for label, shown in page_probs.items():
        assert abs(got[label] - shown) <= 0.051, (label, got[label], shown)


def draw_one(driver: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = by_id(driver, "digit-canvas")
    chain = ActionChains(driver).move_to_element_with_offset(canvas, 4, -95).click_and_hold()
    for _ in range(6):
        chain = chain.move_by_offset(-1, 32)
    chain.release().perform()


def test_digit_stroke_answers_and_its_request_forms_run(page: Any, server: Server,
                                                        screenshots: Any, tmp_path: Path) -> None:
    panel = by_id(page, "digit-panel")
    draw_one(page)
    wait(page, lambda d: css_all(panel, ".answer-label"), "a digit answer")
    wait(page, lambda d: "(nothing sent yet)" not in form(panel, "curl"), "the request forms")
    label = css(panel, ".answer-label").text
    probs = shown_probabilities(panel)
    assert list(probs) == [str(i) for i in range(10)]
    assert label == max(probs, key=probs.get)
    assert label == "1", f"a vertical stroke read as {label}: {probs}"
    facts = facts_of(panel)
    assert "model digit" in facts and "version 1" in facts and "ms round trip" in facts
    seen = page.execute_script(
        "const c = document.getElementById('digit-seen');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)"
        ".filter((v, i) => i % 4 === 0);")
    assert len(seen) == 784 and max(seen) > 200, "the 28x28 view shows the stroke"
    screenshots(panel, "digit")

    answer = json.loads(run_shell(form(panel, "curl"), tmp_path))
    assert_same_answer(probs, answer)
    python = run_python(form(panel, "python"), tmp_path)
    assert "label='1'" in python and "model_name='digit'" in python, python
    response = run_grpcurl_form(form(panel, "grpc"), tmp_path)
    classes = response.result.classifications[0].classes
    assert classes[0].label == "1" and response.model_spec.name == "digit"
    assert abs(100 * classes[0].score - probs["1"]) <= 0.051


def test_sample_photo_and_upload(page: Any, screenshots: Any, tmp_path: Path) -> None:
    panel = by_id(page, "image-panel")
    css(panel, "[data-sample='sneaker.png']").click()
    wait(page, lambda d: css_all(panel, ".answer-label"), "an image answer")
    wait(page, lambda d: d.execute_script(
        "return document.getElementById('image-seen').naturalWidth") == 150,
        "the model's 150x150 input")
    probs = shown_probabilities(panel)
    assert set(probs) == {"ankle_boot", "sneaker"}
    assert "model image" in facts_of(panel)
    assert "tells apart: ankle_boot, sneaker" in by_id(page, "image-labels").text
    answer = json.loads(run_shell(form(panel, "curl"), tmp_path))
    assert_same_answer(probs, answer)
    assert (tmp_path / "sneaker.png").read_bytes() == (SAMPLES / "sneaker.png").read_bytes()
    response = run_grpcurl_form(form(panel, "grpc"), tmp_path)
    top = response.result.classifications[0].classes[0]
    assert abs(100 * top.score - probs[top.label]) <= 0.051
    screenshots(panel, "image")

    before = facts_of(panel)
    by_id(page, "image-file").send_keys(str(SAMPLES / "cat.jpg"))
    wait(page, lambda d: d.execute_script(
        "const i = document.getElementById('image-original');"
        "return !i.hidden && i.naturalWidth === 451"), "the uploaded photo shown")
    wait(page, lambda d: "cat.jpg" in form(panel, "curl") and facts_of(panel) != before,
         "the upload's answer")
    shutil.copy(SAMPLES / "cat.jpg", tmp_path / "cat.jpg")
    answer = json.loads(run_shell(form(panel, "curl"), tmp_path))
    assert_same_answer(shown_probabilities(panel), answer)


def test_text_updates_as_you_type(page: Any, screenshots: Any, tmp_path: Path) -> None:
    panel = by_id(page, "text-panel")
    box = by_id(page, "text-input")
    box.clear()
    box.send_keys("a gripping, beautifully acted film; I loved it")
    wait(page, lambda d: "loved it" in form(panel, "curl") and css_all(panel, ".answer-label"),
         "a sentiment answer")
    probs = shown_probabilities(panel)
    assert set(probs) == {"negative", "positive"}
    answer = json.loads(run_shell(form(panel, "curl"), tmp_path))
    assert_same_answer(probs, answer)
    out = run_python(form(panel, "python"), tmp_path)
    assert "model_name='text'" in out
    response = run_grpcurl_form(form(panel, "grpc"), tmp_path)
    top = response.result.classifications[0].classes[0]
    assert abs(100 * top.score - probs[top.label]) <= 0.051
    cli = form(panel, "grpc").splitlines()[0]
    assert cli.startswith("modelserve predict text ")
    printed = run_shell(cli.replace("modelserve ", f"{sys.executable} -m serving.cli ", 1),
                        tmp_path, env={"PYTHONPATH": str(REPO_ROOT)})
    assert top.label in printed
    # Typing on changes the answer without any button.
    box.send_keys(" but the ending was dull and awful")
    wait(page, lambda d: "awful" in form(panel, "curl"), "the request for the longer text")
    screenshots(panel, "text")


def test_tensor_form_from_metadata(page: Any, screenshots: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    panel = by_id(page, "tensor-panel")
    Select(by_id(page, "tensor-model")).select_by_value("text")
    wait(page, lambda d: "tokens: INT32, shape [-1,100]" in panel.text, "the text model's form")
    assert by_id(page, "tensor-input-0-shape").get_attribute("value") == "[1,100]"
    css(panel, "button[aria-label='Fill tokens with random values']").click()
    css(panel, "button[type=submit]").click()
    wait(page, lambda d: css_all(panel, ".output"), "the outputs")
    screenshots(panel, "tensors")
    output = css(panel, ".output").text
    assert "probability FP32, shape [1,1]" in output
    shown = float(output.split("[", 2)[2].split("]")[0])
    answer = json.loads(run_shell(form(panel, "curl"), tmp_path))
    assert answer["outputs"][0]["name"] == "probability"
    assert abs(answer["outputs"][0]["data"][0] - shown) <= 1e-3 * max(1.0, abs(shown))
    response = run_grpcurl_form(form(panel, "grpc"), tmp_path)
    value = np.frombuffer(response.raw_output_contents[0], dtype="<f4")[0]
    assert abs(float(value) - shown) <= 1e-3
    assert "client.infer(\"text\"" in form(panel, "python")
    run_python(form(panel, "python"), tmp_path)
    # A malformed edit is caught in the page, not sent.
    data = by_id(page, "tensor-input-0-data")
    data.clear()
    data.send_keys("[1, 2")
    css(panel, "button[type=submit]").click()
    wait(page, lambda d: css_all(panel, ".error"), "the JSON error")
    css(panel, "button[aria-label='Fill tokens with zeros']").click()


def test_live_view_follows_a_short_load(page: Any, server: Server, screenshots: Any) -> None:
    panel = by_id(page, "live-panel")
    digit = {"inputs": [[0] * 784]}
    result: list[int] = []
    load = threading.Thread(target=lambda: result.append(bounded_load(
        server.url, "/v1/digit:predict", digit, requests=3000, seconds=8.0)))
    load.start()
    try:
        def busy(d: Any) -> bool:
            rows = css_all(panel, "tr[data-model=digit] td.rps")
            try:
                return bool(rows) and float(rows[0].text) >= 5
            except StaleElementReferenceException:  # the table re-rendered: look again
                return False
        wait(page, busy, "the digit row's requests/s under load", timeout=20)
        row = css(panel, "tr[data-model=digit]")
        assert css(row, "td.p99").text.endswith("ms")
        assert css(row, "td.batch").text != "–"
    finally:
        load.join(timeout=30)
    assert result and result[0] > 0
    wait(page, lambda d: int(css(panel, "tr[data-model=digit]").get_attribute("data-requests"))
         >= result[0], "the whole load counted")
    screenshots(panel, "live")


def test_every_control_has_a_label(page: Any) -> None:
    controls = css_all(page, "input, select, textarea, button, a[href], [tabindex], canvas")
    unnamed = [c.get_attribute("outerHTML")[:120] for c in controls
               if c.is_displayed() and not c.accessible_name.strip()]
    assert len(controls) > 20 and not unnamed, unnamed
    assert not console_errors(page), console_errors(page)


def tab_to(driver: Any, matches: Any, limit: int = 120) -> list[str]:
    """Press Tab until the focused element matches; returns the ids passed on the way."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    passed = []
    for _ in range(limit):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        active = driver.switch_to.active_element
        passed.append(active.get_attribute("id") or active.text)
        if matches(active):
            return passed
    raise AssertionError(f"never reached by Tab: {passed}")


def test_text_image_and_digit_panels_work_from_the_keyboard(page: Any, server: Server) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    page.get(server.url + "/")
    wait(page, lambda d: "Serving digit v1" in by_id(d, "server-status").text, "the models")
    digit = by_id(page, "digit-panel")
    tab_to(page, lambda el: el.get_attribute("id") == "digit-canvas")
    ActionChains(page).send_keys("7").perform()
    wait(page, lambda d: css_all(digit, ".answer-label"), "a digit drawn from the keyboard")

    image = by_id(page, "image-panel")
    passed = tab_to(page, lambda el: el.get_attribute("data-sample") == "ankle_boot.png")
    assert "image-file" in passed  # the file picker is on the way
    ActionChains(page).send_keys(Keys.ENTER).perform()
    wait(page, lambda d: css_all(image, ".answer-label"), "an answer for the sample, by Enter")

    text = by_id(page, "text-panel")
    tab_to(page, lambda el: el.get_attribute("id") == "text-input")
    ActionChains(page).send_keys("a dull, lifeless film").perform()
    wait(page, lambda d: css_all(text, ".answer-label"), "a sentiment, typed")


def test_image_model_published_while_the_page_is_open(browser: Any, real_model_repository: Path,
                                                      tmp_path: Path) -> None:
    """The first run: digit and text serve, the image model appears when it is published."""
    repository = tmp_path / "models"
    for name in ("digit", "text"):
        shutil.copytree(real_model_repository / name, repository / name)
    running = start_server(repository, tmp_path / "log", "--repository-poll-s", "0.3")
    try:
        browser.get(running.url + "/")
        wait(browser, lambda d: "No image model yet" in by_id(d, "server-status").text,
             "the page saying the image model is missing")
        assert "No image model is served yet" in by_id(browser, "image-panel").text
        staging = repository / ".staging-image"
        shutil.copytree(real_model_repository / "image" / "1", staging)
        (repository / "image").mkdir()
        staging.rename(repository / "image" / "1")
        wait(browser, lambda d: "image v1" in by_id(d, "server-status").text,
             "the image model listed", timeout=60)
        panel = by_id(browser, "image-panel")
        css(panel, "[data-sample='cat.jpg']").click()
        wait(browser, lambda d: css_all(panel, ".answer-label"), "an image answer")
    finally:
        stop_server(running)


def test_api_key_asked_for_and_sent(browser: Any, tiny_model_repository: Path,
                                    tmp_path: Path) -> None:
    running = start_server(tiny_model_repository, tmp_path / "log", "--api-keys", "k1")
    try:
        browser.execute_script("sessionStorage.clear()")
        browser.get(running.url + "/")
        browser.execute_script("sessionStorage.clear()")
        browser.refresh()
        wait(browser, lambda d: "needs an API key" in by_id(d, "server-status").text,
             "the page asking for a key")
        key = by_id(browser, "api-key")
        assert key.is_displayed() and key.accessible_name == "API key"
        key.send_keys("k1")
        css(browser, "#key-form button[type=submit]").click()
        wait(browser, lambda d: "Serving digit v1" in by_id(d, "server-status").text,
             "the models, listed with the key")
        box = by_id(browser, "text-input")
        box.send_keys("good fun")
        panel = by_id(browser, "text-panel")
        wait(browser, lambda d: css_all(panel, ".answer-label"), "an answer with the key")
        curl = form(panel, "curl")
        assert '"authorization: Bearer $API_KEY"' in curl and "k1" not in curl
        answer = json.loads(run_shell(curl, tmp_path, env={"API_KEY": "k1"}))
        assert answer["model_name"] == "text"
    finally:
        stop_server(running)
        browser.execute_script("sessionStorage.clear()")
