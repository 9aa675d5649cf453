//! The languages customers are answered in: English, German and Japanese.
//!
//! A request's language is negotiated once, by the middleware here, from its
//! `Accept-Language` header (RFC 9110 §12.5.4: the first range by quality
//! whose primary subtag we speak; `*` means "yours"), else from the default
//! locale of the answering node's region (the region table), else English.
//! A client that names only languages we do not speak gets English. The
//! negotiated language is task-local for the request, so every problem
//! document built while serving it is written in it.
//!
//! What changes with the language is text meant for people: a problem's
//! `title` and `detail`, and notification e-mails (`node/src/notifications.rs`,
//! written in the recipient's home-region language). What never changes is
//! anything a program reads: the problem `code`, field names, enum
//! spellings, ids, amounts. A problem translated from English also carries
//! the English `detail` as `detail_en`, which may say more (the exact field,
//! the parse error) than the translated sentence does.
//!
//! The catalog below has one entry per problem code; a test holds it to the
//! problem table of `docs/http-api.md` and to every code the sources use, so
//! a new code without its translations fails the build's tests.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// A language we answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    De,
    Ja,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::De, Lang::Ja];

    /// The BCP 47 tag sent as `Content-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Ja => "ja",
        }
    }

    /// The language of a BCP 47 tag or locale (`de-AT` → German), if we
    /// speak it.
    pub fn of_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Lang::ALL
            .into_iter()
            .find(|lang| primary.eq_ignore_ascii_case(lang.tag()))
    }

    /// The language to answer in, given the request's `Accept-Language`
    /// (if any) and the region's default locale (if known).
    pub fn negotiate(accept_language: Option<&str>, region_locale: Option<&str>) -> Lang {
        let region = region_locale.and_then(Lang::of_tag).unwrap_or(Lang::En);
        let Some(header) = accept_language.filter(|h| !h.trim().is_empty()) else {
            return region;
        };
        // (quality in thousandths, position, range); q=0 means "not this".
        let mut ranges: Vec<(u16, usize, &str)> = Vec::new();
        for (position, item) in header.split(',').enumerate() {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim();
            if range.is_empty() {
                continue;
            }
            let mut quality = 1000;
            for parameter in parts {
                let parameter = parameter.trim();
                if let Some(q) = parameter
                    .strip_prefix("q=")
                    .or_else(|| parameter.strip_prefix("Q="))
                {
                    quality = parse_quality(q).unwrap_or(0);
                }
            }
            if quality > 0 {
                ranges.push((quality, position, range));
            }
        }
        ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, range) in ranges {
            if range == "*" {
                return region;
            }
            if let Some(lang) = Lang::of_tag(range) {
                return lang;
            }
        }
        Lang::En
    }
}

/// A quality value (`0`, `0.5`, `1.000`) in thousandths.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

tokio::task_local! {
    static LANG: Lang;
}

/// The language of the request being served (English outside a request).
pub fn current() -> Lang {
    LANG.try_with(|lang| *lang).unwrap_or(Lang::En)
}

/// Runs `future` as if serving a request in `lang` (tests, background work
/// on a customer's behalf).
pub async fn scope<F: std::future::Future>(lang: Lang, future: F) -> F::Output {
    LANG.scope(lang, future).await
}

/// Negotiates the request's language and serves it in that language.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let locale = crate::regions::local_locale(&state);
    let accept = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = Lang::negotiate(accept, locale.as_deref());
    let mut response = LANG.scope(lang, next.run(request)).await;
    // Only problem documents are written in a language; other bodies are data.
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        response
            .headers_mut()
            .insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-language"));
    }
    response
}

/// A problem's title and detail in `lang`, with `{name}` filled from
/// `params`; `None` for English (the code's own words are English) or for a
/// code the catalog lacks. A detail whose placeholders `params` cannot fill
/// becomes the title: a customer never sees a brace.
pub fn problem_text(code: &str, lang: Lang, params: &[(&str, String)]) -> Option<(&'static str, String)> {
    let entry = CATALOG.iter().find(|entry| entry.code == code)?;
    let (title, detail) = match lang {
        Lang::En => return None,
        Lang::De => entry.de,
        Lang::Ja => entry.ja,
    };
    let detail = fill(detail, params).unwrap_or_else(|| title.to_owned());
    Some((title, detail))
}

/// `template` with every `{name}` replaced; `None` when one has no value.
pub fn fill(template: &str, params: &[(&str, String)]) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        let (_, value) = params.iter().find(|(key, _)| *key == name)?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// One code's words: (title, detail) in German and in Japanese.
struct Entry {
    code: &'static str,
    de: (&'static str, &'static str),
    ja: (&'static str, &'static str),
}

macro_rules! catalog {
    ($($code:literal => de($de_t:literal, $de_d:literal) ja($ja_t:literal, $ja_d:literal);)+) => {
        &[$(Entry { code: $code, de: ($de_t, $de_d), ja: ($ja_t, $ja_d) }),+]
    };
}

/// Every problem code's title and detail. Placeholders name the fields of
/// the rejection or the members the problem document carries.
static CATALOG: &[Entry] = catalog! {
    "malformed_json" => de("Ungültiges JSON", "Der Anfragetext ist kein gültiges JSON oder hat falsche Felder oder Typen.")
        ja("不正なJSON", "リクエスト本文が有効なJSONではないか、フィールドまたは型が正しくありません。");
    "invalid_request" => de("Ungültige Anfrage", "Die Anfrage enthält einen ungültigen Wert.")
        ja("無効なリクエスト", "リクエストに無効な値が含まれています。");
    "unknown_event" => de("Unbekannte Veranstaltung", "Diese Veranstaltung gibt es nicht.")
        ja("不明なイベント", "そのイベントは存在しません。");
    "unknown_hold" => de("Unbekannte Reservierung", "Diese Reservierung gibt es nicht.")
        ja("不明な仮押さえ", "その仮押さえは存在しません。");
    "unknown_order" => de("Unbekannte Bestellung", "Diese Bestellung gibt es nicht.")
        ja("不明な注文", "その注文は存在しません。");
    "unknown_ticket" => de("Unbekanntes Ticket", "Dieses Ticket gibt es nicht.")
        ja("不明なチケット", "そのチケットは存在しません。");
    "unknown_seat" => de("Unbekannter Platz", "Den Platz {seat} gibt es bei dieser Veranstaltung nicht.")
        ja("不明な座席", "このイベントに座席 {seat} はありません。");
    "unknown_section" => de("Unbekannter Block", "Den Block {section} gibt es bei dieser Veranstaltung nicht.")
        ja("不明なセクション", "このイベントにセクション {section} はありません。");
    "unknown_tier" => de("Unbekannte Preiskategorie", "Die Preiskategorie {tier} gibt es bei dieser Veranstaltung nicht.")
        ja("不明な料金区分", "このイベントに料金区分 {tier} はありません。");
    "unknown_area" => de("Unbekannter Stehplatzbereich", "Den Stehplatzbereich {area} gibt es bei dieser Veranstaltung nicht.")
        ja("不明な自由席エリア", "このイベントに自由席エリア {area} はありません。");
    "event_exists" => de("Veranstaltung existiert bereits", "Eine Veranstaltung mit dieser Nummer existiert bereits.")
        ja("イベントは既に存在します", "そのIDのイベントは既に存在します。");
    "seat_unavailable" => de("Platz nicht verfügbar", "Die Plätze {seats} sind nicht verfügbar.")
        ja("座席は確保できません", "座席 {seats} は確保できません。");
    "not_enough_seats" => de("Nicht genug Plätze", "Für eine Reservierung von {requested} Plätzen sind nicht genug frei.")
        ja("座席が足りません", "{requested} 席を確保できるだけの空きがありません。");
    "customer_limit" => de("Ticketlimit erreicht", "Pro Kunde sind höchstens {limit} Tickets erlaubt; {current} sind bereits reserviert oder gekauft.")
        ja("購入枚数の上限です", "お一人様 {limit} 枚までです。既に {current} 枚を確保または購入済みです。");
    "hold_expired" => de("Reservierung abgelaufen", "Die Reservierung ist abgelaufen; ihre Plätze sind wieder im Verkauf.")
        ja("仮押さえの期限切れ", "仮押さえの期限が切れ、座席は再び販売中です。");
    "hold_not_active" => de("Reservierung nicht aktiv", "Die Reservierung wurde freigegeben oder bereits bestätigt.")
        ja("仮押さえは無効です", "この仮押さえは解放済みか、既に確定しています。");
    "wrong_holder" => de("Gehört einem anderen Kunden", "Die Reservierung oder Bestellung gehört einem anderen Kunden.")
        ja("他のお客様のものです", "この仮押さえまたは注文は他のお客様のものです。");
    "extension_used" => de("Verlängerung bereits genutzt", "Eine Reservierung kann nur einmal verlängert werden.")
        ja("延長は使用済みです", "仮押さえの延長は一度だけです。");
    "order_not_active" => de("Bestellung nicht aktiv", "Die Bestellung ist bereits storniert.")
        ja("注文は無効です", "この注文は既にキャンセルされています。");
    "order_checked_in" => de("Bestellung bereits eingelöst", "Eine Bestellung mit einem bereits eingelösten Ticket kann nicht storniert werden.")
        ja("入場済みの注文です", "入場済みのチケットを含む注文はキャンセルできません。");
    "already_checked_in" => de("Bereits eingelassen", "Dieses Ticket wurde bereits am {first_checked_in_at} eingelöst.")
        ja("入場済みです", "このチケットは {first_checked_in_at} に入場済みです。");
    "ticket_void" => de("Ticket ungültig", "Das Ticket gehört zu einer stornierten Bestellung.")
        ja("無効なチケット", "このチケットはキャンセルされた注文のものです。");
    "unknown_region" => de("Unbekannte Region", "In der Region {region} gibt es keinen Knoten.")
        ja("不明なリージョン", "リージョン {region} にはノードがありません。");
    "map_not_initialised" => de("Cluster noch nicht bereit", "Die Cluster-Karte ist noch nicht geschrieben; bitte später erneut versuchen.")
        ja("クラスターの準備中です", "クラスターマップはまだ作成されていません。しばらくしてから再試行してください。");
    "map_initialised" => de("Cluster bereits eingerichtet", "Die Cluster-Karte existiert bereits.")
        ja("クラスターは初期化済みです", "クラスターマップは既に存在します。");
    "no_group_available" => de("Keine Gruppe verfügbar", "Keine Datengruppe kann eine neue Veranstaltung aufnehmen.")
        ja("利用できるグループがありません", "新しいイベントを受け入れられるデータグループがありません。");
    "not_enough_nodes" => de("Nicht genug Knoten", "{needed} Knoten werden gebraucht, aber nur {available} können ein Replikat aufnehmen.")
        ja("ノードが足りません", "{needed} 台のノードが必要ですが、レプリカを置けるのは {available} 台だけです。");
    "unknown_node" => de("Unbekannter Knoten", "Diesen Knoten gibt es im Cluster nicht.")
        ja("不明なノード", "そのノードはクラスターにありません。");
    "unknown_group" => de("Unbekannte Gruppe", "Diese Gruppe gibt es im Cluster nicht, oder dieser Knoten hat kein Replikat von ihr.")
        ja("不明なグループ", "そのグループはクラスターにないか、このノードにそのレプリカがありません。");
    "unknown_replica" => de("Unbekanntes Replikat", "Dieses Replikat gibt es in der Gruppe nicht.")
        ja("不明なレプリカ", "そのレプリカはこのグループにありません。");
    "node_exists" => de("Knoten existiert bereits", "Der Knoten {node_id} existiert mit anderen Adressen.")
        ja("ノードは既に存在します", "ノード {node_id} は別のアドレスで登録されています。");
    "node_draining" => de("Knoten wird entfernt", "Der Knoten {node_id} wird entfernt und nimmt keine neuen Replikate an.")
        ja("ノードは削除中です", "ノード {node_id} は削除中で、新しいレプリカを受け付けません。");
    "node_has_replicas" => de("Knoten trägt noch Replikate", "Der Knoten {node_id} trägt noch {replicas} Replikate.")
        ja("ノードにレプリカが残っています", "ノード {node_id} にはまだ {replicas} 個のレプリカがあります。");
    "unauthorized" => de("Anmeldung erforderlich", "Bitte melden Sie sich an und senden Sie Ihr Zugangstoken mit.")
        ja("ログインが必要です", "ログインして、アクセストークンを送信してください。");
    "invalid_token" => de("Ungültiges Token", "Das Zugangstoken ist fehlerhaft, gefälscht oder nicht mehr gültig; bitte melden Sie sich erneut an.")
        ja("無効なトークン", "アクセストークンが不正か、無効になっています。再度ログインしてください。");
    "token_expired" => de("Token abgelaufen", "Das Zugangstoken ist abgelaufen; erneuern Sie es.")
        ja("トークンの期限切れ", "アクセストークンの期限が切れました。更新してください。");
    "invalid_credentials" => de("Anmeldedaten falsch", "E-Mail-Adresse oder Passwort ist falsch.")
        ja("認証情報が正しくありません", "メールアドレスまたはパスワードが正しくありません。");
    "session_invalid" => de("Sitzung ungültig", "Das Aktualisierungstoken ist ungültig, abgelaufen oder widerrufen; bitte melden Sie sich erneut an.")
        ja("セッションが無効です", "リフレッシュトークンが無効、期限切れ、または取り消されています。再度ログインしてください。");
    "refresh_token_reused" => de("Token erneut verwendet", "Ein Aktualisierungstoken wurde ein zweites Mal vorgelegt; zu Ihrem Schutz wurde die Sitzung beendet. Bitte melden Sie sich erneut an.")
        ja("トークンが再使用されました", "リフレッシュトークンが再度使われたため、安全のためセッションを終了しました。再度ログインしてください。");
    "forbidden" => de("Nicht erlaubt", "Sie sind angemeldet, dürfen dies aber nicht tun.")
        ja("権限がありません", "ログイン済みですが、この操作は許可されていません。");
    "auth_disabled" => de("Konten abgeschaltet", "Dieser Knoten bietet keine Konten und keine Anmeldung an.")
        ja("アカウント機能は無効です", "このノードではアカウントとログインを利用できません。");
    "email_taken" => de("E-Mail-Adresse vergeben", "Es gibt bereits ein Konto mit dieser E-Mail-Adresse.")
        ja("メールアドレスは登録済みです", "このメールアドレスのアカウントは既に存在します。");
    "account_exists" => de("Konto existiert bereits", "Ein Konto mit dieser Kennung existiert bereits.")
        ja("アカウントは既に存在します", "このIDのアカウントは既に存在します。");
    "unknown_account" => de("Unbekanntes Konto", "Dieses Konto gibt es nicht.")
        ja("不明なアカウント", "そのアカウントは存在しません。");
    "idempotency_key_reused" => de("Idempotency-Key bereits verwendet", "Dieser Idempotency-Key wurde schon für eine andere Anfrage verwendet; senden Sie die neue Anfrage mit einem neuen Schlüssel.")
        ja("Idempotency-Key は使用済みです", "この Idempotency-Key は別のリクエストで使用済みです。新しいキーで送信してください。");
    "too_many_holds" => de("Zu viele Reservierungen", "Pro Kunde sind bei dieser Veranstaltung höchstens {limit} aktive Reservierungen gleichzeitig erlaubt.")
        ja("仮押さえが多すぎます", "このイベントで同時に有効な仮押さえは、お一人様 {limit} 件までです。");
    "event_not_on_sale" => de("Noch nicht im Verkauf", "Die Veranstaltung ist ein Entwurf und noch nicht im Verkauf.")
        ja("まだ販売されていません", "このイベントは下書きで、まだ販売されていません。");
    "sales_not_open" => de("Verkauf noch nicht gestartet", "Der Verkauf beginnt am {opens_at}.")
        ja("販売開始前です", "販売開始は {opens_at} です。");
    "sales_closed" => de("Verkauf beendet", "Der Verkauf endete am {closed_at}.")
        ja("販売は終了しました", "販売は {closed_at} に終了しました。");
    "event_cancelled" => de("Veranstaltung abgesagt", "Die Veranstaltung wurde abgesagt.")
        ja("イベントは中止されました", "このイベントは中止されました。");
    "payment_required" => de("Zahlung erforderlich", "Diese Reservierung kostet Geld: bezahlen Sie sie an der Kasse.")
        ja("支払いが必要です", "この仮押さえは有料です。チェックアウトで支払ってください。");
    "payment_in_progress" => de("Zahlung läuft bereits", "Für diese Reservierung läuft bereits die Zahlung {payment_id} oder ist abgeschlossen.")
        ja("支払いは処理中です", "この仮押さえには処理中または完了済みの支払い {payment_id} があります。");
    "unknown_payment" => de("Unbekannte Zahlung", "Diese Zahlung gibt es nicht.")
        ja("不明な支払い", "その支払いは存在しません。");
    "unknown_venue" => de("Unbekannter Veranstaltungsort", "Diesen Veranstaltungsort gibt es nicht.")
        ja("不明な会場", "その会場は存在しません。");
    "payment_not_refundable" => de("Nicht erstattungsfähig", "Diese Zahlung wartet nicht auf eine Erstattung.")
        ja("返金できません", "この支払いは返金待ちではありません。");
    "already_waitlisted" => de("Bereits auf der Warteliste", "Sie stehen bereits auf der Warteliste dieser Veranstaltung, an Position {position}.")
        ja("既にキャンセル待ちです", "このイベントのキャンセル待ちに既に登録されています（{position} 番目）。");
    "not_waitlisted" => de("Nicht auf der Warteliste", "Sie stehen nicht auf der Warteliste dieser Veranstaltung.")
        ja("キャンセル待ちではありません", "このイベントのキャンセル待ちに登録されていません。");
    "places_available" => de("Plätze verfügbar", "Es sind Plätze frei: reservieren Sie sie, statt sich auf die Warteliste zu setzen.")
        ja("空席があります", "空席があります。キャンセル待ちではなく、仮押さえしてください。");
    "unknown_notice" => de("Unbekannte Benachrichtigung", "Diese Benachrichtigung gibt es nicht.")
        ja("不明なお知らせ", "そのお知らせは存在しません。");
    "not_subscribed" => de("Nicht abonniert", "Sie haben für diese Veranstaltung keine Erinnerung eingerichtet.")
        ja("登録されていません", "このイベントのリマインダーは登録されていません。");
    "no_address" => de("Keine Adresse hinterlegt", "Benachrichtigungen brauchen ein Konto mit hinterlegter Adresse: registrieren Sie sich, melden Sie sich an oder bestätigen Sie Ihre Adresse als Gast.")
        ja("連絡先がありません", "通知にはメールアドレスが登録されたアカウントが必要です。登録、ログイン、またはゲストとしてアドレスを確認してください。");
    "code_invalid" => de("Code ungültig", "Der Code ist falsch, abgelaufen oder aufgebraucht; fordern Sie einen neuen an.")
        ja("コードが無効です", "コードが間違っているか、期限切れか、使用済みです。新しいコードを請求してください。");
    "fx_rate_missing" => de("Wechselkurs fehlt", "Es ist kein Wechselkurs von {from} nach {to} hinterlegt.")
        ja("為替レートがありません", "{from} から {to} への為替レートが設定されていません。");
    "code_not_sent" => de("Code nicht gesendet", "Der Code konnte nicht an die Adresse gesendet werden; bitte später erneut versuchen.")
        ja("コードを送信できません", "コードをそのアドレスに送信できませんでした。しばらくしてから再試行してください。");
    "guests_disabled" => de("Gastkauf nicht verfügbar", "Dieser Knoten kann keine Bestätigungscodes senden, daher ist der Kauf als Gast nicht möglich.")
        ja("ゲスト購入は利用できません", "このノードは確認コードを送信できないため、ゲスト購入は利用できません。");
    "login_throttled" => de("Zu viele Anmeldeversuche", "Zu viele fehlgeschlagene Anmeldungen; bitte warten Sie {retry_after_secs} Sekunden.")
        ja("ログイン試行が多すぎます", "ログインの失敗が多すぎます。{retry_after_secs} 秒待ってください。");
    "too_busy" => de("Ausgelastet", "Der Knoten ist gerade ausgelastet; bitte gleich erneut versuchen.")
        ja("混み合っています", "ノードが混み合っています。少し待ってから再試行してください。");
    "too_many_connections" => de("Zu viele Verbindungen", "Der Knoten hat seine Höchstzahl an Verbindungen erreicht; bitte gleich erneut versuchen.")
        ja("接続数が上限です", "ノードの接続数が上限に達しました。少し待ってから再試行してください。");
    "request_timeout" => de("Zeitüberschreitung", "Innerhalb der Frist kam keine Antwort; bitte erneut versuchen.")
        ja("タイムアウト", "時間内に応答がありませんでした。再試行してください。");
    "provider_unavailable" => de("Zahlungsanbieter nicht erreichbar", "Der Zahlungsanbieter ist gerade nicht erreichbar; bitte später erneut versuchen.")
        ja("決済事業者に接続できません", "決済事業者に接続できません。しばらくしてから再試行してください。");
    "payments_disabled" => de("Zahlungen abgeschaltet", "Dieser Knoten nimmt keine Zahlungen an.")
        ja("支払い機能は無効です", "このノードでは支払いを利用できません。");
    "live_disabled" => de("Live-Ansicht abgeschaltet", "Dieser Knoten liefert keine Live-Sitzpläne.")
        ja("ライブ配信は無効です", "このノードはライブ座席表を配信していません。");
    "clock_suspect" => de("Uhr dieses Knotens unzuverlässig", "Die Uhr dieses Knotens weicht von den anderen ab; er stellt keine Tokens aus. Bitte einen anderen Knoten versuchen.")
        ja("このノードの時計が不正確です", "このノードの時計が他のノードとずれているため、トークンを発行しません。別のノードで再試行してください。");
    "not_ready" => de("Knoten nicht bereit", "Dieser Knoten kann seinen Teil noch nicht bedienen; die Gründe stehen in reasons.")
        ja("ノードの準備ができていません", "このノードはまだ担当分を処理できません。理由は reasons にあります。");
    "replica_too_stale" => de("Daten zu alt", "Die Daten dieses Knotens sind älter, als die Anfrage erlaubt.")
        ja("データが古すぎます", "このノードのデータは、リクエストが許容する鮮度より古くなっています。");
    "not_replicated_here" => de("Nicht auf diesem Knoten", "Dieser Knoten hat keine Kopie dieser Veranstaltung; fragen Sie einen anderen Knoten.")
        ja("このノードにはありません", "このノードにはこのイベントのレプリカがありません。別のノードに問い合わせてください。");
    "idempotency_key_required" => de("Idempotency-Key erforderlich", "Die Kasse braucht einen Idempotency-Key-Header.")
        ja("Idempotency-Key が必要です", "チェックアウトには Idempotency-Key ヘッダーが必要です。");
    "invalid_signature" => de("Ungültige Signatur", "Die Signatur der Nachricht fehlt oder ist ungültig.")
        ja("無効な署名", "メッセージの署名がないか、無効です。");
    "invalid_ticket_signature" => de("Ungültige Ticketsignatur", "Dieses Ticket trägt keine gültige Signatur dieses Veranstalters.")
        ja("チケットの署名が無効です", "このチケットには正しい署名がありません。");
    "rate_limited" => de("Zu viele Anfragen", "Zu viele Reservierungen oder Käufe in kurzer Zeit; bitte warten Sie {retry_after_secs} Sekunden.")
        ja("リクエストが多すぎます", "短時間に仮押さえまたは購入が多すぎます。{retry_after_secs} 秒待ってください。");
    "unsupported_media_type" => de("Nicht unterstützter Inhaltstyp", "Senden Sie den Anfragetext mit Content-Type: application/json.")
        ja("未対応のメディアタイプ", "リクエスト本文は Content-Type: application/json で送信してください。");
    "body_too_large" => de("Anfrage zu groß", "Der Anfragetext überschreitet die Größengrenze.")
        ja("リクエストが大きすぎます", "リクエスト本文がサイズの上限を超えています。");
    "admin_disabled" => de("Verwaltung abgeschaltet", "Dieser Knoten hat keine Verwaltungs-API.")
        ja("管理APIは無効です", "このノードでは管理APIを利用できません。");
    "would_lose_quorum" => de("Mehrheit ginge verloren", "Die Änderung ließe eine Gruppe ohne erreichbare Mehrheit zurück.")
        ja("過半数を失います", "この変更により、グループが到達可能な過半数を失います。");
    "transfer_pending" => de("Übergabe läuft", "Die Leitung wurde übergeben, aber der neue Leader ist noch nicht bestätigt.")
        ja("引き継ぎ中です", "リーダーを引き継ぎましたが、新しいリーダーはまだ確定していません。");
    "unavailable" => de("Nicht verfügbar", "Gerade ist kein Leader erreichbar; es wurde nichts geändert. Bitte später erneut versuchen.")
        ja("利用できません", "現在リーダーに接続できません。何も変更されていません。しばらくしてから再試行してください。");
    "outcome_unknown" => de("Ergebnis unbekannt", "Die Änderung ist vielleicht ausgeführt worden, vielleicht nicht; wiederholen Sie sie mit demselben Idempotency-Key.")
        ja("結果が不明です", "変更が実行されたかどうか不明です。同じ Idempotency-Key で再送してください。");
    "not_found" => de("Nicht gefunden", "Diese Adresse gibt es nicht.")
        ja("見つかりません", "そのリソースは存在しません。");
    "method_not_allowed" => de("Methode nicht erlaubt", "Diese Methode ist für diese Adresse nicht erlaubt.")
        ja("メソッドは許可されていません", "このリソースではそのメソッドは使えません。");
    "internal" => de("Interner Fehler", "Ein interner Fehler ist aufgetreten.")
        ja("内部エラー", "内部エラーが発生しました。");
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_spoken_range_by_quality_wins() {
        let n = |header, region| Lang::negotiate(header, region);
        assert_eq!(n(None, None), Lang::En);
        assert_eq!(n(None, Some("ja-JP")), Lang::Ja);
        assert_eq!(n(None, Some("fr-FR")), Lang::En);
        assert_eq!(n(Some("de-AT"), Some("ja-JP")), Lang::De);
        assert_eq!(n(Some("fr-CH, de;q=0.9, en;q=0.8"), None), Lang::De);
        assert_eq!(n(Some("en;q=0.5, ja;q=0.7"), None), Lang::Ja);
        // Equal qualities keep the client's order.
        assert_eq!(n(Some("ja, de"), None), Lang::Ja);
        // q=0 refuses a language; * asks for the region's.
        assert_eq!(n(Some("de;q=0, *;q=0.1"), Some("de-DE")), Lang::De);
        assert_eq!(n(Some("de;q=0"), Some("ja-JP")), Lang::En);
        assert_eq!(n(Some("*"), Some("ja-JP")), Lang::Ja);
        // Only unspoken languages: English, not the region's.
        assert_eq!(n(Some("fr-FR, es"), Some("ja-JP")), Lang::En);
        // Nonsense is ignored, not an error.
        assert_eq!(n(Some(";;, q=, ja;q=2"), None), Lang::En);
        assert_eq!(n(Some("   "), Some("de-DE")), Lang::De);
    }

    #[test]
    fn qualities_parse_as_rfc_9110_spells_them() {
        assert_eq!(parse_quality("1"), Some(1000));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality("0.05"), Some(50));
        assert_eq!(parse_quality("0"), Some(0));
        assert_eq!(parse_quality("1.5"), None);
        assert_eq!(parse_quality("0.1234"), None);
        assert_eq!(parse_quality("x"), None);
    }

    #[test]
    fn placeholders_fill_or_fall_back_to_the_title() {
        let params = [("seats", "A-1-2, A-1-3".to_owned())];
        assert_eq!(
            problem_text("seat_unavailable", Lang::De, &params),
            Some((
                "Platz nicht verfügbar",
                "Die Plätze A-1-2, A-1-3 sind nicht verfügbar.".to_owned()
            ))
        );
        // A missing value never leaves a brace in front of a customer.
        assert_eq!(
            problem_text("seat_unavailable", Lang::Ja, &[]),
            Some(("座席は確保できません", "座席は確保できません".to_owned()))
        );
        assert_eq!(problem_text("seat_unavailable", Lang::En, &params), None);
        assert_eq!(problem_text("no_such_code", Lang::De, &params), None);
    }

    /// The codes of the problem table in docs/http-api.md.
    fn documented_codes() -> Vec<String> {
        let contract = include_str!("../../docs/http-api.md");
        let mut codes = Vec::new();
        for line in contract.lines() {
            let Some(first) = line.strip_prefix("| `") else {
                continue;
            };
            let cell = first.split(" |").next().unwrap_or("");
            // `a` / `b` / `c` cells name several codes.
            let is_code = |c: &str| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            let names: Vec<&str> = cell
                .split('/')
                .map(|part| part.trim().trim_matches('`'))
                .collect();
            if names.iter().all(|n| is_code(n))
                && line
                    .split('|')
                    .nth(2)
                    .is_some_and(|s| s.trim().parse::<u16>().is_ok())
            {
                codes.extend(names.into_iter().map(str::to_owned));
            }
        }
        codes
    }

    /// Every string literal the api and node sources pass as a problem code.
    fn codes_in_sources() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut codes = Vec::new();
        for dir in ["api/src", "node/src"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("i18n.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for opener in [
                    "Problem::not_found(\"",
                    "Problem::unauthorized(\"",
                    "StatusCode::UNAUTHORIZED, \"",
                ] {
                    for (at, _) in text.match_indices(opener) {
                        let rest = &text[at + opener.len()..];
                        codes.push(rest[..rest.find('"').unwrap()].to_owned());
                    }
                }
                // Problem::new(status, "code", ...), possibly over lines; a
                // code passed in a variable is checked where it is written.
                for (at, _) in text.match_indices("Problem::new(") {
                    let rest = &text[at + "Problem::new(".len()..];
                    let Some(comma) = rest.find(',') else { continue };
                    let Some(code) = rest[comma + 1..].trim_start().strip_prefix('"') else {
                        continue;
                    };
                    let code = &code[..code.find('"').unwrap()];
                    if code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !code.is_empty() {
                        codes.push(code.to_owned());
                    }
                }
            }
        }
        codes
    }

    #[test]
    fn every_problem_code_speaks_every_language() {
        let documented = documented_codes();
        assert!(
            documented.len() > 60,
            "the problem table was not found: {documented:?}"
        );
        let mut missing: Vec<String> = documented
            .into_iter()
            .chain(codes_in_sources())
            .filter(|code| !CATALOG.iter().any(|e| e.code == code))
            .collect();
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "codes without translations: {missing:?}");
        for entry in CATALOG {
            for (title, detail) in [entry.de, entry.ja] {
                assert!(!title.is_empty() && !detail.is_empty(), "{}", entry.code);
            }
            // Both languages ask for the same values.
            let names = |t: &str| -> Vec<String> {
                let mut v: Vec<String> = t
                    .split('{')
                    .skip(1)
                    .map(|s| s[..s.find('}').unwrap()].to_owned())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(names(entry.de.1), names(entry.ja.1), "{}", entry.code);
        }
    }
}
