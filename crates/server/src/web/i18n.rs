//! The dashboard's two languages. Every label is a field of [`Text`], so a language without a
//! translation of some label does not compile. Labels used on one page only live in that page's
//! module, as its own `Text` with an `EN` and a `ZH` value, reached from here.

use model::alarm::{AlarmStatus, Severity};
use model::{MachineState, OrderStatus, Role};

use super::{alarms, factory, machine, orders, overview, plan, products, settings, station};

/// A language of the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    /// English.
    En,
    /// Traditional Chinese as written in Hong Kong.
    ZhHk,
}

impl Lang {
    /// The code kept in the language cookie and used in `<html lang>`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhHk => "zh-HK",
        }
    }

    /// The inverse of [`Lang::code`], forgiving about case and `zh`/`zh-Hant` variants.
    pub(crate) fn parse(code: &str) -> Option<Lang> {
        let code = code.trim().to_ascii_lowercase();
        if code == "en" || code.starts_with("en-") {
            Some(Lang::En)
        } else if code == "zh" || code.starts_with("zh-") || code == "yue" || code.starts_with("yue-") {
            Some(Lang::ZhHk)
        } else {
            None
        }
    }

    /// The other language, offered by the switch in the header.
    pub(crate) fn other(self) -> Lang {
        match self {
            Lang::En => Lang::ZhHk,
            Lang::ZhHk => Lang::En,
        }
    }

    /// The labels in this language.
    pub(crate) fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::ZhHk => &ZH,
        }
    }
}

/// Every label of the dashboard in one language.
pub(crate) struct Text {
    pub(crate) lang: Lang,
    /// The language's own name, shown on the switch that selects it.
    pub(crate) own_name: &'static str,
    pub(crate) product: &'static str,
    pub(crate) skip_to_content: &'static str,
    /// Header of a table's column of buttons, for screen readers.
    pub(crate) actions: &'static str,
    /// A link past a long chart, for keyboard users.
    pub(crate) skip_chart: &'static str,
    pub(crate) nav_label: &'static str,
    pub(crate) nav_overview: &'static str,
    pub(crate) nav_orders: &'static str,
    pub(crate) nav_plan: &'static str,
    pub(crate) nav_station: &'static str,
    pub(crate) nav_alarms: &'static str,
    pub(crate) nav_factory: &'static str,
    pub(crate) nav_products: &'static str,
    pub(crate) nav_settings: &'static str,
    pub(crate) sign_in: &'static str,
    pub(crate) sign_in_title: &'static str,
    pub(crate) sign_out: &'static str,
    pub(crate) username: &'static str,
    pub(crate) password: &'static str,
    pub(crate) signed_in_as: &'static str,
    pub(crate) switch_language: &'static str,
    pub(crate) forbidden_page: &'static str,
    pub(crate) not_found_page: &'static str,
    /// A page address asked for with a method it does not take (e.g. `GET /logout`).
    pub(crate) wrong_method_page: &'static str,
    pub(crate) error_page: &'static str,
    pub(crate) back_to_overview: &'static str,
    pub(crate) none: &'static str,
    pub(crate) live: &'static str,
    /// Between a label and its value (`": "`, or the full-width `"："`).
    pub(crate) colon: &'static str,
    /// What an order number or a user name may hold, on its input.
    pub(crate) code_hint: &'static str,
    /// Brackets around a remark: "(", ")", and " (" after a word ("admin (Administrator)"; in
    /// Chinese full-width and without the space: "admin（管理員）").
    /// Before a number's percent sign: " %" in English, nothing in Chinese ("44.2%").
    pub(crate) percent: &'static str,
    pub(crate) lparen: &'static str,
    pub(crate) rparen: &'static str,
    pub(crate) space_lparen: &'static str,
    /// Between two sentences (a space, or nothing after a full stop in Chinese).
    pub(crate) sentence_gap: &'static str,
    /// The end of a sentence: ". " or "。".
    pub(crate) full_stop: &'static str,
    /// Alarm messages in this language (the rule's name stays as its author wrote it).
    pub(crate) alarm_words: &'static model::alarm::AlarmWords,
    /// The demo's factory clock in the header, and what it means.
    pub(crate) sim_clock: &'static str,
    pub(crate) sim_clock_title: &'static str,
    pub(crate) connection_lost: &'static str,
    /// A date of this year without its year: "12-08" (in Chinese "12月8日", which no one reads as
    /// 12 August).
    pub(crate) month_day: fn(u8, u8) -> String,
    pub(crate) done_message: &'static str,
    pub(crate) failed_message: &'static str,
    /// A change refused because the record changed since the page showed it (412).
    pub(crate) changed_since: &'static str,
    /// A change form sent with every field as it was: nothing is saved.
    pub(crate) unchanged: &'static str,
    /// An action whose request never reached the platform (no network).
    pub(crate) unsent: &'static str,
    pub(crate) confirm: &'static str,
    pub(crate) save: &'static str,
    pub(crate) create: &'static str,
    pub(crate) delete: &'static str,
    pub(crate) edit: &'static str,
    pub(crate) close: &'static str,
    pub(crate) filter: &'static str,
    pub(crate) next_page: &'static str,
    pub(crate) first_page: &'static str,
    pub(crate) machine: &'static str,
    pub(crate) machines: &'static str,
    pub(crate) site: &'static str,
    pub(crate) order: &'static str,
    pub(crate) customer: &'static str,
    pub(crate) product_variant: &'static str,
    pub(crate) quantity: &'static str,
    pub(crate) due: &'static str,
    pub(crate) status: &'static str,
    pub(crate) since: &'static str,
    /// The sign-in page, while sign-ins wait after too many failures (`{seconds}`: how long).
    pub(crate) too_many_sign_ins: &'static str,
    /// The sign-in page, refusing a form another site posted.
    pub(crate) sign_in_here: &'static str,
    /// The sign-in page, when the platform could not record the sign-in.
    pub(crate) sign_in_failed: &'static str,
    /// Before the time an alarm that came back first came up: "3× · first 06:12".
    pub(crate) first_time: &'static str,
    pub(crate) eta: &'static str,
    pub(crate) lateness: &'static str,
    pub(crate) on_time: &'static str,
    pub(crate) late: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) start: &'static str,
    pub(crate) end: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) message: &'static str,
    pub(crate) raised_at: &'static str,
    pub(crate) acknowledge: &'static str,
    pub(crate) acknowledged_by: &'static str,
    pub(crate) not_acknowledged: &'static str,
    pub(crate) oee: &'static str,
    pub(crate) availability: &'static str,
    pub(crate) performance: &'static str,
    pub(crate) quality: &'static str,
    pub(crate) good: &'static str,
    pub(crate) scrap: &'static str,
    pub(crate) hours: &'static str,
    pub(crate) minutes: &'static str,
    pub(crate) seconds: &'static str,
    pub(crate) days: &'static str,
    states: [&'static str; 6],
    roles: [&'static str; 7],
    severities: [&'static str; 3],
    alarm_statuses: [&'static str; 3],
    order_statuses: [&'static str; 5],
    pub(crate) overview: &'static overview::Text,
    pub(crate) machine_page: &'static machine::Text,
    pub(crate) orders_page: &'static orders::Text,
    pub(crate) plan_page: &'static plan::Text,
    pub(crate) station_page: &'static station::Text,
    pub(crate) alarms_page: &'static alarms::Text,
    pub(crate) settings_page: &'static settings::Text,
    pub(crate) factory_page: &'static factory::Text,
    pub(crate) products_page: &'static products::Text,
}

impl Text {
    /// A machine state's name.
    pub(crate) fn state(&self, state: MachineState) -> &'static str {
        let index = MachineState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.states[index]
    }

    /// Every state with its name, for the scripts that update tiles live.
    pub(crate) fn state_names(&self) -> impl Iterator<Item = (MachineState, &'static str)> + '_ {
        MachineState::ALL.into_iter().zip(self.states)
    }

    /// A role's name.
    pub(crate) fn role(&self, role: Role) -> &'static str {
        self.roles[match role {
            Role::Admin => 0,
            Role::Planner => 1,
            Role::Operator => 2,
            Role::Viewer => 3,
            Role::Device => 4,
            Role::Maintenance => 5,
            Role::Sales => 6,
        }]
    }

    /// A severity's name.
    pub(crate) fn severity(&self, severity: Severity) -> &'static str {
        self.severities[match severity {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
        }]
    }

    /// An alarm status's name.
    pub(crate) fn alarm_status(&self, status: AlarmStatus) -> &'static str {
        self.alarm_statuses[match status {
            AlarmStatus::Active => 0,
            AlarmStatus::Acknowledged => 1,
            AlarmStatus::Cleared => 2,
        }]
    }

    /// An order or operation status's name.
    pub(crate) fn order_status(&self, status: OrderStatus) -> &'static str {
        self.order_statuses[match status {
            OrderStatus::Planned => 0,
            OrderStatus::Released => 1,
            OrderStatus::Running => 2,
            OrderStatus::Done => 3,
            OrderStatus::Cancelled => 4,
        }]
    }
}

const EN: Text = Text {
    lang: Lang::En,
    own_name: "English",
    product: "microfactory",
    skip_to_content: "Skip to content",
    actions: "Actions",
    skip_chart: "Skip the chart",
    nav_label: "Main",
    nav_overview: "Overview",
    nav_orders: "Orders",
    nav_plan: "Plan",
    nav_station: "Station",
    nav_alarms: "Alarms",
    nav_factory: "Factory",
    nav_products: "Products",
    nav_settings: "Settings",
    sign_in: "Sign in",
    sign_in_title: "Sign in to microfactory",
    sign_out: "Sign out",
    username: "User name",
    password: "Password",
    signed_in_as: "Signed in as",
    switch_language: "Language",
    forbidden_page: "Your role may not open this page.",
    not_found_page: "There is nothing here.",
    wrong_method_page: "This address is not a page to open; use the buttons on the pages instead.",
    error_page: "Something went wrong; the details are in the server log.",
    back_to_overview: "Back to the overview",
    none: "—",
    live: "Live",
    colon: ": ",
    code_hint: "Letters A–Z, digits, - _ and . only, e.g. HK-2612-001",
    percent: " %",
    lparen: "(",
    rparen: ")",
    space_lparen: " (",
    sentence_gap: " ",
    full_stop: ". ",
    alarm_words: &model::alarm::ENGLISH,
    sim_clock: "Factory time",
    sim_clock_title: "The simulated factory runs this many times faster than real time. Machines, orders, plans and alarms all keep its clock; sign-ins and tokens keep real time.",
    connection_lost: "Live updates interrupted; reconnecting…",
    // "9 Dec": a month by its name, never mistaken for a day (12-09 reads as 12 September in
    // much of the world).
    month_day: |month, day| {
        const MONTHS: [&str; 12] =
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        format!("{day} {}", MONTHS[usize::from(month.clamp(1, 12)) - 1])
    },
    done_message: "Done.",
    failed_message: "Not done ({status}): {message}",
    changed_since: "Someone changed this since the page was shown; reload it to see their change, then make yours again.",
    unchanged: "Nothing to save: every field is as it was.",
    unsent: "Not sent: there is no connection to the platform, so nothing was saved. Try again when the connection is back.",
    confirm: "Are you sure?",
    save: "Save",
    create: "Create",
    delete: "Delete",
    edit: "Edit",
    close: "Close",
    filter: "Filter",
    next_page: "Next page",
    first_page: "First page",
    machine: "Machine",
    machines: "Machines",
    site: "Site",
    order: "Order",
    customer: "Customer",
    product_variant: "Product",
    quantity: "Quantity",
    due: "Due",
    status: "Status",
    since: "Since",
    too_many_sign_ins: "Too many failed sign-ins: try again in {seconds} s.",
    sign_in_here: "Sign in on this page: a sign-in sent from another site is refused.",
    sign_in_failed: "The platform cannot sign you in just now (its store may be full or read-only); tell an administrator.",
    first_time: "first",
    eta: "ETA",
    lateness: "Lateness",
    on_time: "On time",
    late: "Late",
    operation: "Operation",
    start: "Start",
    end: "End",
    severity: "Severity",
    message: "Message",
    raised_at: "Raised",
    acknowledge: "Acknowledge",
    acknowledged_by: "Acknowledged by",
    not_acknowledged: "not acknowledged",
    oee: "OEE",
    availability: "Availability",
    performance: "Performance",
    quality: "Quality",
    good: "Good",
    scrap: "Scrap",
    hours: "h",
    minutes: "min",
    seconds: "s",
    days: "d",
    states: ["Running", "Idle", "Setup", "Down", "Offline", "Planned stop"],
    roles: ["Administrator", "Planner", "Operator", "Viewer", "Device", "Maintenance", "Sales"],
    severities: ["Info", "Warning", "Critical"],
    alarm_statuses: ["Active", "Acknowledged, still active", "Cleared"],
    order_statuses: ["Planned", "Released", "Running", "Done", "Cancelled"],
    overview: &overview::EN,
    machine_page: &machine::EN,
    orders_page: &orders::EN,
    plan_page: &plan::EN,
    station_page: &station::EN,
    alarms_page: &alarms::EN,
    settings_page: &settings::EN,
    factory_page: &factory::EN,
    products_page: &products::EN,
};

const ZH: Text = Text {
    lang: Lang::ZhHk,
    own_name: "繁體中文",
    product: "microfactory 微工廠",
    skip_to_content: "跳至內容",
    actions: "操作",
    skip_chart: "略過圖表",
    nav_label: "主選單",
    nav_overview: "總覽",
    nav_orders: "訂單",
    nav_plan: "排程",
    nav_station: "工位",
    nav_alarms: "警報",
    nav_factory: "工廠",
    nav_products: "產品",
    nav_settings: "設定",
    sign_in: "登入",
    sign_in_title: "登入 microfactory",
    sign_out: "登出",
    username: "用戶名稱",
    password: "密碼",
    signed_in_as: "已登入：",
    switch_language: "語言",
    forbidden_page: "你的角色無權開啟此頁。",
    not_found_page: "此處沒有內容。",
    wrong_method_page: "此網址不是可開啟的頁面；請改用頁面上的按鈕。",
    error_page: "發生錯誤；詳情已記錄於伺服器日誌。",
    back_to_overview: "返回總覽",
    none: "—",
    live: "即時",
    colon: "：",
    code_hint: "只可使用英文字母、數字及 - _ .（例如 HK-2612-001）",
    percent: "%",
    lparen: "（",
    rparen: "）",
    space_lparen: "（",
    sentence_gap: "",
    full_stop: "。",
    alarm_words: &ZH_ALARMS,
    sim_clock: "工廠時間",
    sim_clock_title: "模擬工廠以此倍數快於真實時間運行。機器、訂單、排程及警報都按工廠時間；登入及權杖按真實時間。",
    connection_lost: "即時更新中斷，正在重新連線…",
    month_day: |month, day| format!("{month}月{day}日"),
    done_message: "已儲存。",
    failed_message: "未能完成（{status}）：{message}",
    changed_since: "此頁顯示後已有人更改；請重新載入查看其更改，再作出你的更改。",
    unchanged: "沒有要儲存的更改：所有欄位與原來相同。",
    unsent: "未能傳送：與平台的連線中斷，甚麼都未儲存。連線恢復後請再試。",
    confirm: "確定嗎？",
    save: "儲存",
    create: "建立",
    delete: "刪除",
    edit: "編輯",
    close: "關閉",
    filter: "篩選",
    next_page: "下一頁",
    first_page: "第一頁",
    machine: "機器",
    machines: "機器",
    site: "廠房",
    order: "訂單",
    customer: "客戶",
    product_variant: "產品",
    quantity: "數量",
    due: "交期",
    status: "狀態",
    since: "開始於",
    too_many_sign_ins: "登入失敗次數過多：請於 {seconds} 秒後再試。",
    sign_in_here: "請在此頁登入：從其他網站送出的登入會被拒絕。",
    sign_in_failed: "平台暫時未能讓你登入（其數據庫可能已滿或唯讀）；請通知管理員。",
    first_time: "首次",
    eta: "預計完成",
    lateness: "延誤",
    on_time: "準時",
    late: "延誤",
    operation: "工序",
    start: "開始",
    end: "結束",
    severity: "嚴重程度",
    message: "訊息",
    raised_at: "觸發時間",
    acknowledge: "確認",
    acknowledged_by: "確認人",
    not_acknowledged: "未確認",
    oee: "設備綜合效率（OEE）",
    availability: "可用率",
    performance: "表現率",
    quality: "良品率",
    good: "良品",
    scrap: "廢品",
    hours: "小時",
    minutes: "分鐘",
    seconds: "秒",
    days: "日",
    states: ["運行中", "閒置", "調機", "故障", "離線", "計劃停機"],
    roles: ["管理員", "計劃員", "操作員", "檢視者", "設備", "維修", "營業"],
    severities: ["資訊", "警告", "嚴重"],
    alarm_statuses: ["警報中", "已確認，仍持續", "已解除"],
    order_statuses: ["已計劃", "已下達", "生產中", "已完成", "已取消"],
    overview: &overview::ZH,
    machine_page: &machine::ZH,
    orders_page: &orders::ZH,
    plan_page: &plan::ZH,
    station_page: &station::ZH,
    alarms_page: &alarms::ZH,
    settings_page: &settings::ZH,
    factory_page: &factory::ZH,
    products_page: &products::ZH,
};

/// Alarm messages in Chinese.
const ZH_ALARMS: model::alarm::AlarmWords = model::alarm::AlarmWords {
    above: "{metric} = {value}，高於 {limit}",
    below: "{metric} = {value}，低於 {limit}",
    rate_above: "{metric} 每分鐘變化超過 {limit}",
    stale: "{metric} 超過 {limit} 秒沒有數據",
    stopped_longer: "停機超過 {limit} 分鐘",
    separator: "：",
};

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::Lang;

    fn asked(accept: &str) -> Lang {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(accept).unwrap());
        super::super::lang_of(&headers)
    }

    #[test]
    fn the_browser_s_most_preferred_language_is_taken_by_its_weights() {
        assert_eq!(asked("zh-HK;q=0.5,en;q=0.9"), Lang::En);
        assert_eq!(asked("en;q=0.4, zh-TW;q=0.8"), Lang::ZhHk);
        assert_eq!(asked("fr, zh-CN, en"), Lang::ZhHk, "of equal weights the first the dashboard has");
        assert_eq!(asked("yue-HK, en;q=0.5"), Lang::ZhHk, "Cantonese reads Traditional Chinese");
        assert_eq!(asked("zh;q=0, en;q=0.1"), Lang::En, "q=0 is not acceptable");
        assert_eq!(asked("de"), Lang::En);
        assert_eq!(asked("zh;q=abc"), Lang::En, "a garbled weight is left out");
    }
}
