"""Walk the dashboard in headless Chromium (Selenium over Debian's chromedriver), as a
trainer and as a client, and save a screenshot of every page.

Usage: walk.py BASE_URL TRAINER PASSWORD CLIENT_LINK SCREENSHOT_DIR
Prints one line per step; exits non-zero at the first thing that is not as expected."""
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import Select, WebDriverWait

base, trainer, password, link, shots = sys.argv[1:6]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900",
]:
    options.add_argument(flag)
# Chromium's first start on a fresh, busy machine can miss chromedriver's deadline
# ("DevToolsActivePort file doesn't exist"): start it up to three times, saying why.
for attempt in range(3):
    try:
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        break
    except Exception as e:
        print(f"chromium did not start (attempt {attempt + 1}): {str(e).splitlines()[0] if str(e) else type(e).__name__}", flush=True)
        if attempt == 2:
            print("FAILED: chromium did not start three times", flush=True)
            sys.exit(1)
# Generous: on a 2-core machine running the whole suite, a debug build drawing five
# charts while other tests load both cores can take far longer than it does alone.
driver.set_page_load_timeout(120)
# While a page is being replaced, chromedriver can answer a check with a passing error
# ("target frame detached", "cannot determine loading status"): ignore those and ask
# again; a real failure still ends the wait, with the last error, after 90 s.
wait = WebDriverWait(driver, 90, ignored_exceptions=(WebDriverException,))


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}\nat {driver.current_url}\n{driver.page_source[:3000]}", flush=True)
        driver.quit()
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def shot(name):
    # The whole page: grow the window to the document's height first.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(900, min(height + 40, 8000)))
    path = os.path.join(shots, f"{name}.png")
    driver.save_screenshot(path)
    driver.set_window_size(1280, 900)
    print(f"screenshot: {path}", flush=True)


def phone_shot(name):
    # A phone's width (an iPhone's 390 CSS pixels), the whole page's height.
    driver.set_window_size(390, 844)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(390, max(844, min(height + 40, 8000)))
    path = os.path.join(shots, f"{name}.png")
    driver.save_screenshot(path)
    driver.set_window_size(1280, 900)
    print(f"screenshot: {path}", flush=True)


def submit(button, until, what):
    """Click, wait until the old page is gone, then until the new page shows `until`: on a
    busy machine the answer can take a while, and reading the page at once would see the
    page the click came from."""
    button.click()
    try:
        wait.until(EC.staleness_of(button))
        wait.until(until)
    except Exception as e:
        detail = (getattr(e, "msg", None) or str(e) or "").strip().splitlines()
        check(False, f"{what} ({type(e).__name__} while waiting for the answer: {detail[0] if detail else ''})")


def images_loaded():
    imgs = driver.find_elements(By.TAG_NAME, "img")
    for img in imgs:
        driver.execute_script("arguments[0].scrollIntoView()", img)
    wait.until(lambda d: all(d.execute_script("return arguments[0].complete", i) for i in imgs))
    return imgs, [i.get_attribute("src") for i in imgs if driver.execute_script("return arguments[0].naturalWidth", i) == 0]


try:
    # Login.
    driver.get(f"{base}/roster")
    check(driver.current_url.endswith("/login"), "a page without a session leads to the login")
    shot("login")
    driver.find_element(By.NAME, "name").send_keys(trainer)
    driver.find_element(By.NAME, "password").send_keys("wrong password!")
    submit(driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button"),
           lambda d: "Wrong name or password" in d.page_source, "a wrong password is refused")
    check("Wrong name or password" in driver.page_source, "a wrong password is refused")
    driver.find_element(By.NAME, "name").send_keys(trainer)
    driver.find_element(By.NAME, "password").send_keys(password)
    submit(driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button"),
           lambda d: d.current_url.endswith("/roster"), "logged in, on the roster")
    check(True, "logged in, on the roster")

    # Roster: needs-attention first.
    rows = driver.find_elements(By.CSS_SELECTOR, "#roster tbody tr")
    check(len(rows) >= 4, f"the roster lists the demo clients ({len(rows)} rows)")
    flags = ["attention" in (r.get_attribute("class") or "") for r in rows]
    check(flags == sorted(flags, reverse=True) and any(flags), f"needs-attention clients come first {flags}")
    imgs, broken = images_loaded()
    check(imgs and not broken, f"the roster chart draws ({broken})")
    shot("roster")

    # A client page with its charts.
    submit(driver.find_element(By.LINK_TEXT, "alex"),
           lambda d: "alex" in d.find_element(By.TAG_NAME, "h1").text, "alex's page opens")
    imgs, broken = images_loaded()
    check(len(imgs) == 5 and not broken, f"alex's four charts and the progress chart draw ({len(imgs)} images, broken {broken})")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#week tbody tr")) == 3, "this week shows alex's three homework")
    shot("client")
    client_page = driver.current_url.split("?")[0]

    # Assign homework by phrase.
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/homework']")
    form.find_element(By.NAME, "phrase").send_keys("20 minutes of mobility 3 times a week")
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "Assigned #" in d.page_source,
           "the homework form answers")
    check("20 minutes of mobility 3 days a week" in driver.find_element(By.CSS_SELECTOR, ".msg").text
          or "mobility" in driver.find_element(By.CSS_SELECTOR, ".msg").text, "homework assigned by phrase, echoed")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#homework tbody tr")) == 4, "it is listed with the others")
    shot("assigned")

    # A misspelled phrase comes back in the form, with why and a one-click fix.
    form = driver.find_element(By.CSS_SELECTOR, "form#assign")
    form.find_element(By.NAME, "phrase").send_keys("150 minutes of cadio a week")
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "Not understood" in d.page_source,
           "a refused phrase is explained in the form")
    check(driver.find_element(By.CSS_SELECTOR, "form#assign input[name='phrase']").get_attribute("value")
          == "150 minutes of cadio a week", "the refused phrase is back in the field")
    suggestion = driver.find_element(By.CSS_SELECTOR, "form.suggestion")
    check("150 minutes of cardio per week" in suggestion.text, f"a suggestion is offered ({suggestion.text})")
    driver.execute_script("arguments[0].scrollIntoView()", suggestion)
    forms = driver.find_element(By.CSS_SELECTOR, "div.forms")
    path = os.path.join(shots, "assign-error.png")
    forms.screenshot(path)
    print(f"screenshot: {path}", flush=True)
    submit(suggestion.find_element(By.CSS_SELECTOR, "button"), lambda d: "Assigned #" in d.page_source,
           "the suggestion assigns in one click")
    check("150 minutes of cardio per week" in driver.find_element(By.CSS_SELECTOR, ".msg").text,
          "the suggested homework is assigned")

    # Questions for the week, from the client page.
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/questions']")
    form.find_element(By.NAME, "questions").send_keys(
        "[1-10] On a scale of 1-10, how do you choose to make this week work for you?\n"
        "What will you do to make that happen?\n"
        "[yes/no] Did you sleep 7 hours most nights?")
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "Assigned #" in d.page_source,
           "the questions form answers")
    check("answer 3 questions" in driver.find_element(By.CSS_SELECTOR, ".msg").text, "three questions assigned")

    # The progress chart: benchmarks beside the adherence of their homework.
    driver.get(f"{client_page}/charts/progress.svg")
    check("<svg" in driver.page_source or driver.find_elements(By.TAG_NAME, "svg"), "the progress chart is an SVG")
    shot("progress")
    driver.get(client_page)

    # A workout, from the recent workouts.
    submit(driver.find_element(By.CSS_SELECTOR, "#workouts tbody tr a"), lambda d: "/workouts/" in d.current_url,
           "a workout opens")
    imgs, broken = images_loaded()
    check(len(imgs) == 1 and not broken, "the workout's heart-rate chart draws")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#parts tbody tr")) >= 1, "its sources are listed")
    shot("workout")

    # The client's own page: check in.
    driver.delete_all_cookies()
    driver.get(link)
    check("Hi " in driver.find_element(By.TAG_NAME, "h1").text, "the private link opens without a login")
    imgs, broken = images_loaded()
    check(len(imgs) == 4 and not broken, "the client's charts draw")

    # The week's questions, answered at a phone's width.
    driver.set_window_size(390, 844)
    form = driver.find_element(By.CSS_SELECTOR, "form.questions")
    for sel in form.find_elements(By.TAG_NAME, "select"):
        Select(sel).select_by_visible_text("8")
    for radio in form.find_elements(By.CSS_SELECTOR, "input[type='radio'][value='yes']"):
        radio.click()
    for area in form.find_elements(By.TAG_NAME, "textarea"):
        area.send_keys("Train before work on Tuesday and Thursday.")
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "Done" in d.find_element(By.CSS_SELECTOR, "form.questions").text,
           "the answers are taken")
    check("Train before work" in driver.find_element(By.CSS_SELECTOR, "form.questions").text, "the answers are shown back")
    phone_shot("questions-phone")
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/checkin']")
    select = Select(form.find_element(By.NAME, "homework_id"))
    pushups = [o.text for o in select.options if "push-ups" in o.text]
    check(pushups, "the check-in offers the push-ups")
    select.select_by_visible_text(pushups[0])
    form.find_element(By.NAME, "value").send_keys("12")
    form.find_element(By.NAME, "note").send_keys("before bed")
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "Thanks! Checked in" in d.page_source,
           "the check-in answers")
    check(True, "the check-in is taken")
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/reflection']")
    rating = form.find_element(By.NAME, "rating")
    rating.clear()
    rating.send_keys("8")
    form.find_element(By.NAME, "note").send_keys("good week, tired on Thursday")
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "Saved your week" in d.page_source,
           "the reflection answers")
    check(True, "the weekly reflection is saved")
    shot("client-link")

    # Their own sources: a Health Auto Export token shown once, a file sent from the phone.
    driver.set_window_size(390, 844)
    check(driver.find_elements(By.ID, "sources"), "the page lists the client's devices and accounts")
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/push-token']")
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "shown only now" in d.page_source,
           "a Health Auto Export token is shown once, with the steps")
    driver.set_window_size(390, max(844, min(driver.execute_script("return document.documentElement.scrollHeight") + 40, 8000)))
    path = os.path.join(shots, "sources-phone.png")
    driver.find_element(By.ID, "sources").screenshot(path)
    print(f"screenshot: {path}", flush=True)
    import datetime
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=1, hours=2)
    points = "".join(
        f'<trkpt lat="{52.52 + i * 0.0002:.6f}" lon="13.40"><time>{(start + datetime.timedelta(seconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")}</time></trkpt>'
        for i in range(120))
    gpx = os.path.join(shots, "morning-walk.gpx")
    with open(gpx, "w") as f:
        f.write(f'<?xml version="1.0" encoding="UTF-8"?><gpx version="1.1" creator="walk.py" xmlns="http://www.topografix.com/GPX/1/1">'
                f'<trk><name>Morning walk</name><type>walking</type><trkseg>{points}</trkseg></trk></gpx>')
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/upload']")
    form.find_element(By.NAME, "file").send_keys(gpx)
    submit(form.find_element(By.CSS_SELECTOR, "button"), lambda d: "Thanks! morning-walk.gpx" in d.page_source,
           "a GPX file sent from the page is imported")
    driver.get(f"{base}/roster")
    check(driver.current_url.endswith("/login"), "the client link gives no way into the dashboard")
except SystemExit:
    raise
except BaseException:
    import traceback
    print(f"FAILED: an unexpected error\nat {driver.current_url}\n{traceback.format_exc()}", flush=True)
    driver.quit()
    sys.exit(1)
driver.quit()
print("walk complete", flush=True)
