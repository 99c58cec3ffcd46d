//! Problem details in the dashboard's Chinese. The API speaks English to its clients; the
//! dashboard's own calls (they carry the CSRF header) get the `detail` and each error's `message`
//! in the reader's language, so a form refused on a Chinese page says why in Chinese. A message
//! without a translation here stays English: nothing is lost, it is only less friendly.

/// Field names as the dashboard's forms label them.
const FIELDS: &[(&str, &str)] = &[
    ("number", "訂單編號"),
    ("customer", "客戶"),
    ("variant_id", "產品"),
    ("quantity", "數量"),
    ("due", "交期"),
    ("priority", "優先級"),
    ("material_ready", "物料到貨時間"),
    ("good", "良品"),
    ("scrap", "廢品"),
    ("operation_id", "工序"),
    ("counted_before", "已計數"),
    ("machine_id", "機器"),
    ("status", "狀態"),
    ("username", "用戶名稱"),
    ("password", "密碼"),
    ("current_password", "現有密碼"),
    ("new_password", "新密碼"),
    ("role", "角色"),
    ("site_id", "廠房"),
    ("name", "名稱"),
    ("code", "代號"),
    ("metric", "數據項目"),
    ("condition", "條件"),
    ("condition.threshold", "限值"),
    ("condition.seconds", "限值（秒）"),
    ("condition.minutes", "限值（分鐘）"),
    ("deadband", "死區"),
    ("for_seconds", "持續（秒）"),
    ("severity", "嚴重程度"),
    ("reason", "原因"),
    ("state", "狀態"),
    ("start", "開始"),
    ("end", "結束"),
    ("at", "時間"),
    ("time_limit_seconds", "求解時間"),
    ("good_metric", "良品數據項目"),
    ("scrap_metric", "廢品數據項目"),
    ("ideal_unit_seconds", "理想單件時間（秒）"),
    ("search", "搜尋"),
    ("time_zone", "時區"),
    ("utc_offset", "固定時差"),
    ("shifts", "班次"),
    ("holidays", "假期"),
    ("line_id", "生產線"),
    ("kind", "類型"),
    ("capabilities", "能力標籤"),
    ("rated_power_kw", "額定功率"),
];

/// English messages and their Chinese, `{}` standing for a part carried over (`{0}`, `{1}` … in
/// the Chinese, in the English order). The first that matches is used.
const MESSAGES: &[(&str, &str)] = &[
    // Common rules of fields.
    ("must not be blank", "不可留空"),
    ("must be 1 to 64 characters", "須為 1 至 64 個字元"),
    ("must be 1 to 128 printable characters", "須為 1 至 128 個可列印字元"),
    ("must be 1 to 200 characters", "須為 1 至 200 個字元"),
    ("must be at most 200 characters", "最多 200 個字元"),
    ("must be {} to 1024 characters", "須為 {0} 至 1024 個字元"),
    ("needs at least {} characters other than spaces", "除空格外最少要有 {0} 個字元"),
    (
        "may contain only ASCII letters, digits, '-', '_' and '.'",
        "只可包含英文字母、數字及「-」「_」「.」（例如 HK-2612-001）",
    ),
    ("must not contain control characters", "不可包含控制字元"),
    ("must not contain text-direction controls", "不可包含文字方向控制字元"),
    ("must be a date between the years 2000 and 2200", "須為 2000 至 2200 年之間的日期"),
    (
        "must be an RFC 3339 time, e.g. 2026-12-01T18:00:00+08:00",
        "須為 RFC 3339 時間，例如 2026-12-01T18:00:00+08:00",
    ),
    ("must be from 1 to 10", "須為 1 至 10"),
    ("must be from {} to {}", "須為 {0} 至 {1}"),
    ("must be a number from {} to {}", "須為 {0} 至 {1} 之間的數字"),
    ("must be a finite number", "須為有效數字"),
    ("must be a positive integer", "須為正整數"),
    ("must be at least 1", "最少為 1"),
    ("must be at least 1 second", "最少 1 秒"),
    ("must be after start", "須遲於開始時間"),
    ("must differ from start", "不可與開始時間相同"),
    ("must be at most one day", "最多一日"),
    ("must be at most one week", "最多一星期"),
    ("must be from seven days ago to five minutes from now", "須為七日前至五分鐘後之間"),
    ("{} is already in use", "已被使用"),
    // Sites and their calendars.
    ("must look like +08:00 (from -12:00 to +14:00)", "格式須為 +08:00（由 -12:00 至 +14:00）"),
    ("must be an IANA time zone name such as Europe/Berlin", "須為 IANA 時區名稱，例如 Asia/Hong_Kong"),
    ("give either utc_offset or time_zone, not both", "時區及固定時差只可填寫其一"),
    (
        "give utc_offset (+08:00) or time_zone (Asia/Hong_Kong)",
        "請填寫時區（例如 Asia/Hong_Kong）或固定時差（例如 +08:00）",
    ),
    ("must name at least one day", "最少須選一日"),
    ("must be a time HH:MM", "須為時間 HH:MM"),
    ("must have at most {} entries", "最多 {0} 項"),
    (
        "the machine has a history ({}); delete it with ?with_history=true to delete that too",
        "此機器有歷史記錄（{0}），不能刪除；請改為退役",
    ),
    // Orders.
    ("number is already in use (?existing=skip imports the other rows)", "訂單編號已被使用"),
    ("no such variant (id {})", "沒有此產品（編號 {0}）"),
    ("the variant has no routing, so it cannot be made", "此產品沒有工藝路線，無法生產"),
    ("the order is {} already", "訂單已是「{0}」"),
    ("an order that is {} cannot become {}", "「{0}」的訂單不能改為「{1}」"),
    ("the order is {}; it can no longer be changed", "訂單已是「{0}」，不能再更改"),
    (
        "the quantity of a {} order is fixed, as its lots are on the dispatch lists; for more units enter another order; for fewer, cancel it (and delete it, to use its number again) and enter it anew",
        "「{0}」訂單的數量已固定（其批次已在派工清單上）：要多做請另開訂單；要少做請取消訂單（要再用其編號須先刪除）後重新輸入",
    ),
    // Work at the station.
    (
        "the lot is {} units and {} are counted; at most {} more may be reported",
        "此批共 {0} 件，已計數 {1} 件；最多可再報告 {2} 件",
    ),
    ("report at least one unit, good or scrap", "請最少報告一件良品或廢品"),
    (
        "with these, {} of the lot's {} units are made: nothing is left for later, so finish it",
        "連同這些，此批 {1} 件中已做好 {0} 件：沒有餘數留待之後，請按「完成」",
    ),
    ("the operation is {}; only a running lot stops for now", "工序是「{0}」：只有生產中的批次可以暫停"),
    ("the operation is {}; it cannot finish again", "工序是「{0}」，不能再完成一次"),
    (
        "the operation was cancelled (with its order); nothing more is reported on it",
        "工序已隨訂單取消，不能再報告",
    ),
    (
        "the lot's count changed since it was read ({} units then, {} now: good {}, scrap {}); check what is left and report again",
        "讀取後此批的計數已改變（當時 {0} 件，現在 {1} 件：良品 {2}，廢品 {3}）；請核對餘數後再報告",
    ),
    ("the operation is {}; start it first", "工序是「{0}」：請先開始"),
    ("the operation is {}; its units can no longer be reported", "工序是「{0}」，不能再報告件數"),
    ("the operation is running on {}; report its units there", "工序正在 {0} 生產，請在該機器報告件數"),
    (
        "the operation is running on {}; only planned or released operations start",
        "工序正在 {0} 生產：只有已計劃或已下達的工序可以開始",
    ),
    (
        "the operation is {}; only planned or released operations start",
        "工序是「{0}」：只有已計劃或已下達的工序可以開始",
    ),
    ("release the order before starting its operations", "請先下達訂單，才開始其工序"),
    ("release the order before reporting units of its operations", "請先下達訂單，才報告其工序的件數"),
    ("not an eligible machine of this operation", "此機器不能做這道工序"),
    ("this machine is not an eligible machine of the operation", "此機器不能做這道工序"),
    (
        "step {} \"{}\" of this order is {}; steps run in order, so finish it first",
        "此訂單第 {0} 步「{1}」是「{2}」：工序須按次序進行，請先完成它",
    ),
    (
        "the machine is running step {} \"{}\" of order {}; finish it first",
        "此機器正在生產訂單 {2} 的第 {0} 步「{1}」：請先完成它",
    ),
    ("the operation has no machine to report on", "此工序沒有可報告的機器"),
    ("the operation no longer exists", "此工序已不存在"),
    ("no such operation", "沒有此工序"),
    ("machine {} is retired", "機器 {0} 已退役"),
    ("work runs on the machine: {}; finish or pause it first", "機器上有工作正在進行：{0}；請先完成或暫停"),
    // Alarms.
    ("the alarm was already acknowledged by {}", "此警報已由 {0} 確認"),
    ("this condition watches a metric; name it", "此條件監察數據項目：請填寫數據項目"),
    ("stopped_longer watches the machine state, not a metric", "「停機過久」監察機器狀態，不用數據項目"),
    ("only above, below and rate_above have a deadband", "只有「高於」「低於」「變化率高於」可設死區"),
    ("must be below the rate limit, or the alarm never clears", "須低於變化率限值，否則警報永不解除"),
    // Plans.
    ("only draft plans can be published; this one is {}", "只可發佈草稿排程；此排程是「{0}」"),
    (
        "the plan is stale: plan {} was published after it was computed; plan again",
        "此排程已過時：計算後已發佈了排程 {0}；請重新排程",
    ),
    ("the plan was cancelled", "排程已取消"),
    // People and tokens.
    (
        "username is already in use (as {}; names differ by more than case)",
        "用戶名稱已被使用（{0}；名稱須不只大小寫不同）",
    ),
    ("the last admin must stay an admin", "最後一位管理員必須保持管理員角色"),
    ("admins cannot delete themselves", "管理員不能刪除自己"),
    ("people sign in with a password: give one", "用戶以密碼登入：請設定密碼"),
    ("device accounts sign in with tokens, not passwords", "設備帳戶以權杖登入，不用密碼"),
    ("a device account needs the site it publishes for", "設備帳戶須指定其發佈數據的廠房"),
    ("only device accounts are bound to a site", "只有設備帳戶會綁定廠房"),
    (
        "a user holds at most {} tokens; revoke one no longer used first",
        "每位用戶最多持有 {0} 個權杖：請先撤銷不再使用的",
    ),
    ("only administrators may revoke other people's tokens", "只有管理員可撤銷他人的權杖"),
    ("is not the password now", "不正確"),
    ("the {} role may not do this", "你的角色（{0}）不能執行此操作"),
    // Records.
    ("the record is still referenced by others", "此記錄仍被其他記錄使用"),
    ("the record does not exist (any more)", "此記錄不存在（或已刪除）"),
    ("{} {} does not exist", "{0} {1} 不存在"),
    ("a window may last at most 60 days", "時段最長 60 日"),
    (
        "the store cannot write now (a full disk or a read-only file system); retry once an administrator has made room",
        "資料庫暫時未能寫入（磁碟已滿或唯讀）；請待管理員騰出空間後再試",
    ),
];

/// Words a message carries over that have a Chinese name: statuses and roles.
const WORDS: &[(&str, &str)] = &[
    ("planned", "已計劃"),
    ("released", "已下達"),
    ("running", "生產中"),
    ("done", "已完成"),
    ("cancelled", "已取消"),
    ("draft", "草稿"),
    ("active", "現行"),
    ("superseded", "已被取代"),
    ("admin", "管理員"),
    ("planner", "計劃員"),
    ("operator", "操作員"),
    ("viewer", "檢視者"),
    ("device", "設備"),
    ("order", "訂單"),
    ("operation", "工序"),
    ("machine", "機器"),
    ("plan", "排程"),
    ("user", "用戶"),
    ("site", "廠房"),
    ("line", "生產線"),
    ("variant", "產品"),
    ("routing", "工藝路線"),
    ("material", "物料"),
    ("alarm", "警報"),
];

/// The Chinese label of a field the dashboard's forms have, if it has one.
pub(crate) fn field(name: &str) -> Option<&'static str> {
    FIELDS.iter().find(|(english, _)| *english == name).map(|(_, chinese)| *chinese)
}

/// `message` in Chinese, if it is one this module knows.
pub(crate) fn message(message: &str) -> Option<String> {
    MESSAGES.iter().find_map(|(english, chinese)| {
        let parts = matches(english, message)?;
        let mut out = (*chinese).to_owned();
        for (i, part) in parts.iter().enumerate() {
            let word =
                WORDS.iter().find(|(english, _)| english == part).map_or(*part, |(_, chinese)| *chinese);
            out = out.replace(&format!("{{{i}}}"), word);
        }
        Some(out)
    })
}

/// A field error as the page says it: "數量：須為 1 至 1000000".
pub(crate) fn field_error(name: &str, text: &str) -> String {
    let label = field(name).unwrap_or(name);
    format!("{label}：{}", message(text).unwrap_or_else(|| text.to_owned()))
}

/// The parts of `text` that stand where `pattern` has `{}`, when the rest is the same.
fn matches<'a>(pattern: &str, text: &'a str) -> Option<Vec<&'a str>> {
    let literals: Vec<&str> = pattern.split("{}").collect();
    let (first, rest) = literals.split_first()?;
    let mut left = text.strip_prefix(first)?;
    if rest.is_empty() {
        return left.is_empty().then(Vec::new);
    }
    let mut parts = Vec::with_capacity(rest.len());
    for (i, literal) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        let at = if last {
            // The last literal ends the text.
            left.len()
                .checked_sub(literal.len())
                .filter(|at| left[*at..] == **literal && left.is_char_boundary(*at))?
        } else if literal.is_empty() {
            return None;
        } else {
            left.find(literal)?
        };
        let part = &left[..at];
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        left = &left[at + literal.len()..];
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_matched_whole_and_their_parts_carried_over() {
        assert_eq!(message("must not be blank").as_deref(), Some("不可留空"));
        assert_eq!(message("must not be blank, really"), None);
        assert_eq!(message("must be from 1 to 1000000").as_deref(), Some("須為 1 至 1000000"));
        assert_eq!(
            message("the lot is 60 units and 43 are counted; at most 77 more may be reported").as_deref(),
            Some("此批共 60 件，已計數 43 件；最多可再報告 77 件")
        );
        assert_eq!(
            message("the operator role may not do this").as_deref(),
            Some("你的角色（操作員）不能執行此操作")
        );
        assert_eq!(
            message(
                "step 2 \"Mill; finish\" of this order is running; steps run in order, so finish it first"
            )
            .as_deref(),
            Some("此訂單第 2 步「Mill; finish」是「生產中」：工序須按次序進行，請先完成它")
        );
        assert_eq!(message("number is already in use").as_deref(), Some("已被使用"));
        assert_eq!(message("order 99999 does not exist").as_deref(), Some("訂單 99999 不存在"));
        assert_eq!(
            message("the operation is running on p3d-01; only planned or released operations start")
                .as_deref(),
            Some("工序正在 p3d-01 生產：只有已計劃或已下達的工序可以開始")
        );
        assert_eq!(message("something no one wrote"), None);
        assert_eq!(field_error("quantity", "must be from 1 to 1000000"), "數量：須為 1 至 1000000");
        assert_eq!(field_error("steps[2].x", "odd"), "steps[2].x：odd");
    }

    #[test]
    fn every_chinese_message_uses_exactly_the_parts_its_english_has() {
        for (english, chinese) in MESSAGES {
            let parts = english.matches("{}").count();
            for i in 0..parts {
                assert!(
                    chinese.contains(&format!("{{{i}}}")) || *english == "{} is already in use",
                    "{english}"
                );
            }
            assert!(!chinese.contains(&format!("{{{parts}}}")), "{english}");
        }
    }
}
