"""Streamlit web demonstrator: classify a product, browse dataset examples, read the evaluation report.

Started by ``prodcat app --model MODEL_DIR [--data X.csv] [--report report.html]`` (see
:func:`prodcat.serve.launch.run_webapp`), which passes its settings in environment variables.
The query string can pre-fill the form and pick the page, e.g.
``/?designation=Piscine+gonflable`` or ``/?page=report``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from prodcat.errors import ProdcatError
from prodcat.review import ReviewPolicy
from prodcat.serve import webdata
from prodcat.serve.service import PredictionService, ProductInput

PAGES = {"classify": "Classify a product", "examples": "Dataset examples", "report": "Evaluation report"}
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]


@st.cache_resource(show_spinner="Loading the model...")
def load_service(model_dir: str) -> PredictionService:
    return PredictionService.from_path(model_dir)


@st.cache_data(show_spinner="Loading the dataset...")
def load_examples(path: str, n: int, mtime: float) -> webdata.Examples:
    return webdata.load_examples(path, n)


def percent(p: float | None) -> str:
    return "-" if p is None or pd.isna(p) else f"{100 * p:.1f} %"


def probability_chart(answer: dict[str, Any]) -> alt.Chart:
    """Horizontal bars: the model's top classes, each with the probability from every modality."""
    frame = webdata.chart_frame(answer)
    sources = [s for s in webdata.SOURCES if s in set(frame["source"])]
    colours = [webdata.SOURCE_COLOURS[webdata.SOURCES.index(s)] for s in sources]
    order = frame.drop_duplicates("label").sort_values("rank")["label"].tolist()
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", title="probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y("label:N", title=None, sort=order, axis=alt.Axis(labelLimit=260)),
            yOffset=alt.YOffset("source:N", sort=sources),
            color=alt.Color("source:N", sort=sources, scale=alt.Scale(domain=sources, range=colours),
                            legend=alt.Legend(orient="bottom", title=None)),
            tooltip=["label", "source", alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=70 * len(order))
    )


def show_answer(answer: dict[str, Any], review: ReviewPolicy) -> None:
    """The prediction: headline, review flag, top-k chart with modality contributions, table and words."""
    st.subheader(f"{answer['name']} ({answer['code']}): {percent(answer['probability'])}")
    verdict = review.verdict(answer.get("needs_review"))
    if answer.get("needs_review"):
        st.warning(verdict)
    elif answer.get("needs_review") is False:
        st.success(verdict)
    else:
        st.caption(verdict)
    for warning in answer["warnings"]:
        st.warning(warning)
    st.altair_chart(probability_chart(answer), width="stretch")
    table = webdata.top_table(answer)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                                for c in table.columns if c not in ("code", "name")})
    if answer["words"]:
        words = ", ".join(f"{w['word']} ({w['weight']:.2f})" for w in answer["words"])
        st.markdown(f"**Words behind the text prediction:** {words}")
    st.caption("Photo used." if answer["has_image"] else "Text only.")


def classify_page(service: PredictionService) -> None:
    st.header("Classify a product")
    accepts = [m for m, ok in (("text", service.served.accepts_text), ("photos", service.served.accepts_images)) if ok]
    params = st.query_params
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.write(f"Enter a title and a description and/or upload a photo. This model reads {' and '.join(accepts)}.")
        with st.form("product"):
            designation = st.text_input("Title (designation)", value=params.get("designation", ""), max_chars=5000)
            description = st.text_area("Description", value=params.get("description", ""), height=120)
            photo = st.file_uploader("Photo", type=UPLOAD_TYPES)
            submitted = st.form_submit_button("Classify", type="primary")
    prefilled = bool(params.get("designation") or params.get("description"))
    if not (submitted or prefilled):
        return
    image = photo.getvalue() if photo is not None else None
    with right:
        try:
            answer = service.predict([ProductInput(designation, description, image, image_field="photo")], k=5)[0]
        except ProdcatError as error:
            st.error(str(error))
            return
        show_answer(answer, service.review)
    if image is not None:
        left.image(image, caption=photo.name, width=260)


def examples_page(service: PredictionService, config: webdata.AppConfig) -> None:
    st.header("Dataset examples")
    if not config.data:
        st.info("Start the app with `--data X_train_update.csv` (or any official X file) to classify its first "
                "products here.")
        return
    n = st.slider("Products", min_value=1, max_value=20, value=5)
    try:
        examples = load_examples(config.data, n, Path(config.data).stat().st_mtime)
    except (ProdcatError, OSError) as error:
        st.error(str(error))
        return
    st.caption(f"First {len(examples.products)} products of {examples.source.name}"
               + (f", photos from {examples.images_dir}" if examples.images_dir else ", no photo folder found"))
    X = examples.products
    products = [ProductInput(row.designation, row.description, webdata.read_image(row.image_path), name=f"row {index}")
                for index, row in zip(X.index, X.itertuples())]
    try:
        answers = service.predict(products, k=5)
    except ProdcatError as error:
        st.error(str(error))
        return
    rows = []
    for index, product, answer in zip(X.index, products, answers):
        truth = int(examples.labels.loc[index]) if examples.labels is not None else None
        rows.append({"row": index, "photo": webdata.thumbnail_uri(product.image),
                     "designation": product.designation, "predicted": answer["code"],
                     "name": answer["name"], "probability": answer["probability"], "true code": truth,
                     "correct": None if truth is None else truth == answer["code"],
                     "needs review": answer["needs_review"]})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"photo": st.column_config.ImageColumn("photo", width="small"),
                                "probability": st.column_config.ProgressColumn("probability", min_value=0,
                                                                               max_value=1, format="%.2f")})
    for product, answer, row in zip(products, answers, rows):
        with st.expander(f"{row['row']}: {product.designation[:90]}"):
            left, right = st.columns([1, 3])
            if product.image is not None:
                left.image(product.image, width="stretch")
            else:
                left.caption("no photo")
            with right:
                if product.description:
                    st.caption(product.description[:400])
                show_answer(answer, service.review)


def report_page(config: webdata.AppConfig) -> None:
    st.header("Evaluation report")
    try:
        report = webdata.find_report(config.model_dir, config.report)
    except ProdcatError as error:
        st.error(str(error))
        return
    if report is None:
        looked = ", ".join(str(p) for p in webdata.report_candidates(config.model_dir))
        st.info(f"No evaluation report found next to the model (looked for {looked}). Train with `prodcat train` "
                "to get a run folder with one, or start the app with `--report PATH`.")
        return
    html = report.read_text(encoding="utf-8", errors="replace")
    st.caption(f"{report}")
    st.download_button("Download report.html", html, file_name="report.html", mime="text/html")
    components.html(html, height=1200, scrolling=True)


def sidebar(service: PredictionService) -> str:
    keys = list(PAGES)
    wanted = st.query_params.get("page", "classify")
    page = st.sidebar.radio("Page", keys, index=keys.index(wanted) if wanted in keys else 0,
                            format_func=PAGES.__getitem__)
    info = service.model_info()
    st.sidebar.markdown("### Model")
    st.sidebar.markdown(f"preset **{info['preset']}**, components **{', '.join(info['components'])}**  \n"
                        f"trained on {info['training'].get('n') or '?'} products  \n"
                        f"fingerprint `{(info['fingerprint'] or '?')[:12]}`")
    for name, value in webdata.headline_metrics(info["metrics"]).items():
        st.sidebar.metric(name.replace("_", " "), f"{value:.3f}")
    review = service.review.describe(where=False).capitalize()
    st.sidebar.caption(f"Metrics {webdata.metrics_source(info['metrics'])}. {review}.")
    return page


def main() -> None:
    st.set_page_config(page_title="prodcat demonstrator", layout="wide")
    st.title("prodcat: Rakuten France product classification")
    config = webdata.AppConfig.from_environment()
    if not config.model_dir:
        st.error(f"No model given: start the app with `prodcat app --model MODEL_DIR` (or set {webdata.ENV_MODEL}).")
        return
    try:
        service = load_service(config.model_dir)
    except ProdcatError as error:
        st.error(str(error))
        return
    page = sidebar(service)
    if page == "classify":
        classify_page(service)
    elif page == "examples":
        examples_page(service, config)
    else:
        report_page(config)


main()
