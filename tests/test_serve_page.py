"""The web page of nmt-serve in a real headless browser (Debian's chromium, driven by Selenium):
type a sentence, read the translation, count the heatmap's rows and columns."""

import pytest

pytest.importorskip("fastapi", reason="nmt-serve needs the .[serve] extra")
from serving import chromium_driver, request  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    if driver is None:
        pytest.skip("no browser: apt-get install chromium chromium-driver, pip install selenium")
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_translates_and_draws_the_attention(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sentence = "Nous ne sommes pas malades."
    browser.get(served)
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value") == "fr-en")
    browser.find_element(By.ID, "text").send_keys(sentence)
    beam = browser.find_element(By.ID, "beam")
    beam.clear()
    beam.send_keys("2")
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda d: d.find_element(By.ID, "result").is_displayed())

    _, api, _ = request(served + "translate", {"text": sentence, "beam_size": 2, "attention": True})
    expected = api["translations"][0]
    assert browser.find_element(By.ID, "translation").text == expected["text"] != ""
    rows = browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == expected["target_pieces"]
    columns = {len(r.find_elements(By.TAG_NAME, "td")) for r in rows}
    assert columns == {len(expected["source_pieces"])}
    assert not browser.find_element(By.ID, "error").is_displayed()
    # everything the page loaded came from the server itself (no CDN: it works offline)
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(url.startswith(served) for url in loaded)


def test_the_page_shows_a_refused_request_as_its_one_line_error(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served)
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value") == "fr-en")
    browser.find_element(By.ID, "text").send_keys("Il est grand.")
    browser.execute_script("document.getElementById('beam').value = '0'")
    browser.execute_script(
        "document.getElementById('form').dispatchEvent(new Event('submit', {cancelable: true}))"
    )
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "beam_size must be an integer >= 1" in browser.find_element(By.ID, "error").text
