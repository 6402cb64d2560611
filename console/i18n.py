# Chinese text uses full-width punctuation on purpose.
# ruff: noqa: RUF001
"""English and Simplified Chinese for every label of the console, and the language switch.

Labels are compiled into the page as both strings and chosen in the browser by the
``tollgate_lang`` cookie, so switching language needs no round trip. Messages made by the
server (toasts, form errors) are translated with :func:`tr` in the state's language.
"""

from __future__ import annotations

from typing import Final

import reflex as rx

__all__ = ("LANGS", "MESSAGES", "LangState", "t", "tr")

LANGS: Final = ("en", "zh")
LANG_COOKIE: Final = "tollgate_lang"
_YEAR: Final = 365 * 24 * 3600

MESSAGES: Final[dict[str, tuple[str, str]]] = {
    # Shell and navigation
    "app.title": ("Tollgate console", "Tollgate 控制台"),
    "nav.dashboard": ("Dashboard", "仪表盘"),
    "nav.channels": ("Channels", "渠道"),
    "nav.prices": ("Models & prices", "模型与价格"),
    "nav.groups": ("Groups", "分组"),
    "nav.tenants": ("Tenants", "租户"),
    "nav.keys": ("API keys", "API 密钥"),
    "nav.codes": ("Redemption codes", "兑换码"),
    "nav.logs": ("Request logs", "请求日志"),
    "nav.users": ("Console users", "控制台用户"),
    "nav.settings": ("Settings", "设置"),
    "nav.overview": ("Overview", "概览"),
    "nav.usage": ("Usage", "用量"),
    "nav.redeem": ("Redeem a code", "兑换充值"),
    "nav.admin": ("Administration", "管理"),
    "nav.tenant": ("My account", "我的账户"),
    "nav.home": ("Home", "首页"),
    "shell.signout": ("Sign out", "退出登录"),
    "shell.language": ("Language", "语言"),
    "shell.role.admin": ("Admin", "管理员"),
    "shell.role.tenant": ("Tenant", "租户"),
    # Sign-in
    "signin.title": ("Sign in", "登录"),
    "signin.subtitle": (
        "Operators and tenants sign in here.",
        "运营者与租户在此登录。",
    ),
    "signin.username": ("User name", "用户名"),
    "signin.password": ("Password", "密码"),
    "signin.submit": ("Sign in", "登录"),
    "signin.wrong": ("The user name or password is wrong.", "用户名或密码错误。"),
    "signin.throttled": (
        "Too many failed sign-ins. Try again in {seconds} s.",
        "登录失败次数过多，请 {seconds} 秒后再试。",
    ),
    "signin.expired": ("Your sign-in expired; sign in again.", "登录已过期，请重新登录。"),
    # Toolkit
    "table.empty": ("Nothing here yet.", "暂无数据。"),
    "table.error": ("Could not load this list.", "无法加载列表。"),
    "table.retry": ("Retry", "重试"),
    "table.refresh": ("Refresh", "刷新"),
    "table.page": ("Page", "第"),
    "table.of": ("of", "页，共"),
    "table.pages": ("", "页"),
    "table.rows": ("rows", "条"),
    "table.previous": ("Previous", "上一页"),
    "table.next": ("Next", "下一页"),
    "table.per_page": ("per page", "条/页"),
    "table.filter": ("Filter", "筛选"),
    "table.clear": ("Clear", "清除"),
    "table.actions": ("Actions", "操作"),
    "table.loading": ("Loading…", "加载中…"),
    "form.save": ("Save", "保存"),
    "form.cancel": ("Cancel", "取消"),
    "form.create": ("Create", "创建"),
    "form.saved": ("Saved.", "已保存。"),
    "form.invalid": ("Some fields need fixing.", "部分字段需要修改。"),
    "form.failed": ("Could not save: {error}", "保存失败：{error}"),
    "form.required": ("Required.", "必填。"),
    "form.min_length": ("At least {n} characters.", "至少 {n} 个字符。"),
    "form.max_length": ("At most {n} characters.", "最多 {n} 个字符。"),
    "form.integer": ("A whole number.", "请输入整数。"),
    "form.min_value": ("At least {n}.", "不能小于 {n}。"),
    "form.max_value": ("At most {n}.", "不能大于 {n}。"),
    "form.choice": ("Choose one of the options.", "请选择一个选项。"),
    "form.format": ("Not in the expected format.", "格式不正确。"),
    "form.usd": ("A USD amount such as 12.50.", "请输入美元金额，例如 12.50。"),
    "form.name": (
        "Letters, digits and . _ @ - only, no spaces.",
        "只能包含字母、数字和 . _ @ -，不能有空格。",
    ),
    "form.url": ("A URL starting with http:// or https://.", "以 http:// 或 https:// 开头的网址。"),
    "form.models": ("Comma-separated model names.", "以逗号分隔的模型名。"),
    "confirm.title": ("Are you sure?", "确定吗？"),
    "confirm.yes": ("Yes, do it", "确定"),
    "denied": ("You are not allowed to do that.", "你无权执行此操作。"),
    "error.unexpected": ("Something went wrong: {error}", "出错了：{error}"),
    "yes": ("Yes", "是"),
    "no": ("No", "否"),
    "all": ("All", "全部"),
    # Common columns and fields
    "col.id": ("ID", "ID"),
    "col.name": ("Name", "名称"),
    "col.status": ("Status", "状态"),
    "col.created": ("Created", "创建时间"),
    "col.updated": ("Updated", "更新时间"),
    "col.tenant": ("Tenant", "租户"),
    "col.group": ("Group", "分组"),
    "col.model": ("Model", "模型"),
    "col.models": ("Models", "模型"),
    "col.channel": ("Channel", "渠道"),
    "col.key": ("Key", "密钥"),
    "col.balance": ("Balance (USD)", "余额（美元）"),
    "col.held": ("Held (USD)", "冻结（美元）"),
    "col.amount": ("Amount (USD)", "金额（美元）"),
    "col.spent": ("Spent (USD)", "已用（美元）"),
    "col.time": ("Time", "时间"),
    "search": ("Search", "搜索"),
    "status.enabled": ("enabled", "启用"),
    "status.disabled": ("disabled", "停用"),
    "status.active": ("active", "有效"),
    "status.revoked": ("revoked", "已吊销"),
    "status.suspended": ("suspended", "已暂停"),
    "status.redeemed": ("redeemed", "已兑换"),
    "status.void": ("void", "已作废"),
    "status.ok": ("ok", "成功"),
    "status.error": ("error", "错误"),
    "status.truncated": ("truncated", "截断"),
    # Dashboard
    "dash.title": ("Dashboard", "仪表盘"),
    "dash.range": ("Range", "时间范围"),
    "dash.range.24h": ("Last 24 hours", "最近 24 小时"),
    "dash.range.7d": ("Last 7 days", "最近 7 天"),
    "dash.range.30d": ("Last 30 days", "最近 30 天"),
    "dash.requests": ("Requests", "请求数"),
    "dash.tokens": ("Tokens", "Token 数"),
    "dash.spend": ("Spend (USD)", "消费（美元）"),
    "dash.error_rate": ("Error rate (%)", "错误率（%）"),
    "dash.errors": ("Errors", "错误数"),
    "dash.p50": ("p50 latency (ms)", "p50 延迟（毫秒）"),
    "dash.p95": ("p95 latency (ms)", "p95 延迟（毫秒）"),
    "dash.by_model": ("By model", "按模型"),
    "dash.by_channel": ("By channel", "按渠道"),
    "dash.by_tenant": ("By tenant", "按租户"),
    "dash.over_time": ("Over time (UTC)", "随时间变化（UTC）"),
    "dash.latency": ("Latency by model", "各模型延迟"),
    # Channels
    "channels.title": ("Channels", "渠道"),
    "channels.new": ("New channel", "新建渠道"),
    "channels.edit": ("Edit channel", "编辑渠道"),
    "channels.kind": ("Protocol", "协议"),
    "channels.base_url": ("Base URL", "接口地址"),
    "channels.api_key": ("Upstream API key", "上游 API 密钥"),
    "channels.api_key_keep": (
        "Leave empty to keep the stored key.",
        "留空则保留已保存的密钥。",
    ),
    "channels.models_hint": (
        "Comma-separated, e.g. gpt-4o, gpt-4o-mini",
        "逗号分隔，例如 gpt-4o, gpt-4o-mini",
    ),
    "channels.priority": ("Priority (lower first)", "优先级（越小越先）"),
    "channels.weight": ("Weight", "权重"),
    "channels.groups": ("Groups (empty: all)", "分组（留空表示全部）"),
    "kind.openai": ("OpenAI-compatible", "OpenAI 兼容"),
    "kind.anthropic": ("Anthropic", "Anthropic"),
    "kind.gemini": ("Gemini", "Gemini"),
    "kind.workers-ai": ("Workers AI", "Workers AI"),
    "role.admin": ("Admin", "管理员"),
    "role.tenant": ("Tenant user", "租户用户"),
    "kind.topup": ("top-up", "充值"),
    "kind.charge": ("charge", "扣费"),
    "kind.adjustment": ("adjustment", "调整"),
    "kind.redeem": ("redeem", "兑换"),
    "channels.test": ("Test", "测试"),
    "channels.testing": ("Testing…", "测试中…"),
    "channels.test_ok": ("Answered in {ms} ms: {answer}", "{ms} 毫秒内响应：{answer}"),
    "channels.test_failed": ("Failed after {ms} ms: {error}", "{ms} 毫秒后失败：{error}"),
    "channels.enable": ("Enable", "启用"),
    "channels.disable": ("Disable", "停用"),
    "channels.delete": ("Delete", "删除"),
    "channels.delete_confirm": (
        "Delete this channel? Requests stop going to it at once.",
        "删除此渠道？请求将立即停止发往该渠道。",
    ),
    "channels.created": ("Channel created.", "渠道已创建。"),
    "channels.updated": ("Channel saved.", "渠道已保存。"),
    "channels.status_changed": ("Channel {status}.", "渠道已{status}。"),
    "channels.deleted": ("Channel deleted.", "渠道已删除。"),
    # Prices
    "prices.title": ("Models & prices", "模型与价格"),
    "prices.new": ("Set a price", "设置价格"),
    "prices.input": ("Input, USD / 1M tokens", "输入，美元 / 百万 Token"),
    "prices.cached_input": ("Cached input, USD / 1M tokens", "缓存输入，美元 / 百万 Token"),
    "prices.output": ("Output, USD / 1M tokens", "输出，美元 / 百万 Token"),
    "prices.saved": ("Price saved.", "价格已保存。"),
    "prices.delete_confirm": (
        "Delete this price? Gateways stop serving the model at once.",
        "删除此价格？网关将立即停止提供该模型。",
    ),
    "prices.deleted": ("Price deleted.", "价格已删除。"),
    # Groups
    "groups.title": ("Groups", "分组"),
    "groups.new": ("New group", "新建分组"),
    "groups.edit": ("Edit group", "编辑分组"),
    "groups.ratio": ("Price ratio", "价格倍率"),
    "groups.tenants": ("Tenants", "租户数"),
    "groups.saved": ("Group saved.", "分组已保存。"),
    "groups.delete_confirm": ("Delete this group?", "删除此分组？"),
    "groups.deleted": ("Group deleted.", "分组已删除。"),
    # Tenants
    "tenants.title": ("Tenants", "租户"),
    "tenants.new": ("New tenant", "新建租户"),
    "tenants.opening_balance": ("Opening balance (USD)", "初始余额（美元）"),
    "tenants.keys": ("Active keys", "有效密钥"),
    "tenants.created": ("Tenant created.", "租户已创建。"),
    "tenants.adjust": ("Adjust balance", "调整余额"),
    "tenants.adjust_amount": (
        "Amount in USD (negative to deduct)",
        "金额（美元，负数表示扣减）",
    ),
    "tenants.reason": ("Reason (kept in the ledger)", "原因（记入账本）"),
    "tenants.adjusted": ("Balance is now {balance} USD.", "当前余额 {balance} 美元。"),
    "tenants.suspend": ("Suspend", "暂停"),
    "tenants.activate": ("Activate", "启用"),
    "tenants.suspend_confirm": (
        "Suspend this tenant? Its requests are refused at once.",
        "暂停此租户？其请求将立即被拒绝。",
    ),
    "tenants.status_changed": ("Tenant {status}.", "租户已{status}。"),
    "tenants.ledger": ("Ledger", "账本"),
    "ledger.kind": ("Kind", "类型"),
    "ledger.balance_after": ("Balance after (USD)", "变动后余额（美元）"),
    "ledger.note": ("Note", "备注"),
    "ledger.reference": ("Reference", "关联"),
    # Keys
    "keys.title": ("API keys", "API 密钥"),
    "keys.new": ("New key", "新建密钥"),
    "keys.name": ("Key name", "密钥名称"),
    "keys.prefix": ("Key", "密钥"),
    "keys.models": ("Allowed models (empty: all)", "允许的模型（留空表示全部）"),
    "keys.available": ("Available models: {models}", "可用模型：{models}"),
    "keys.spend_limit": ("Spend limit (USD, optional)", "消费上限（美元，可选）"),
    "keys.limit": ("Limit (USD)", "上限（美元）"),
    "keys.rpm": ("Requests per minute (optional)", "每分钟请求数（可选）"),
    "keys.expires": ("Expires", "过期时间"),
    "keys.created_once": (
        "Copy this key now. It is shown only once.",
        "请立即复制此密钥，它只显示这一次。",
    ),
    "keys.copy": ("Copy", "复制"),
    "keys.copied": ("Copied.", "已复制。"),
    "keys.done": ("Done", "完成"),
    "keys.revoke": ("Revoke", "吊销"),
    "keys.revoke_confirm": (
        "Revoke this key? Requests with it are refused within a second.",
        "吊销此密钥？使用它的请求将在一秒内被拒绝。",
    ),
    "keys.revoked": ("Key revoked.", "密钥已吊销。"),
    "keys.edit_models": ("Allowed models", "允许的模型"),
    "keys.models_saved": ("Allowed models saved.", "允许的模型已保存。"),
    "keys.all_models": ("all models", "全部模型"),
    # Codes
    "codes.title": ("Redemption codes", "兑换码"),
    "codes.generate": ("Generate a batch", "批量生成"),
    "codes.batch": ("Batch", "批次"),
    "codes.count": ("How many", "数量"),
    "codes.amount": ("Worth each (USD)", "面额（美元）"),
    "codes.expires_days": ("Expires after days (optional)", "有效天数（可选）"),
    "codes.code": ("Code", "兑换码"),
    "codes.redeemed_by": ("Redeemed by", "兑换租户"),
    "codes.redeemed_at": ("Redeemed at", "兑换时间"),
    "codes.generated": (
        "{count} codes generated. Download them now: they are shown only once.",
        "已生成 {count} 个兑换码。请立即下载：它们只显示这一次。",
    ),
    "codes.export": ("Download CSV", "下载 CSV"),
    "codes.void": ("Void", "作废"),
    "codes.void_confirm": (
        "Void this code? It can no longer be redeemed.",
        "作废此兑换码？它将无法再被兑换。",
    ),
    "codes.voided": ("Code voided.", "兑换码已作废。"),
    # Logs
    "logs.title": ("Request logs", "请求日志"),
    "logs.detail": ("Request detail", "请求详情"),
    "logs.since": ("From (UTC)", "开始（UTC）"),
    "logs.until": ("To (UTC)", "结束（UTC）"),
    "logs.tokens_in": ("In", "输入"),
    "logs.tokens_out": ("Out", "输出"),
    "logs.cost": ("Cost (USD)", "费用（美元）"),
    "logs.latency": ("Latency (ms)", "延迟（毫秒）"),
    "logs.http": ("HTTP", "HTTP"),
    "logs.request_id": ("Request ID", "请求 ID"),
    "logs.not_found": ("No such request.", "没有该请求。"),
    "logs.back": ("Back to the list", "返回列表"),
    "logs.field": ("Field", "字段"),
    "logs.value": ("Value", "值"),
    # Users
    "users.title": ("Console users", "控制台用户"),
    "users.new": ("New user", "新建用户"),
    "users.role": ("Role", "角色"),
    "users.tenant_hint": ("Tenant (for tenant users)", "租户（租户用户必填）"),
    "users.last_signin": ("Last sign-in", "最近登录"),
    "users.created": ("User created.", "用户已创建。"),
    "users.disable": ("Disable", "停用"),
    "users.enable": ("Enable", "启用"),
    "users.status_changed": ("User {status}.", "用户已{status}。"),
    "users.self": ("You cannot disable yourself.", "不能停用自己。"),
    "users.set_password": ("Set password", "设置密码"),
    "users.password_hint": (
        "At least 10 characters; the user is signed out everywhere.",
        "至少 10 个字符；该用户的所有会话都将结束。",
    ),
    # Settings
    "settings.title": ("Settings", "设置"),
    "settings.site_name": ("Site name", "站点名称"),
    "settings.default_group": ("Default group of new tenants", "新租户默认分组"),
    "settings.signup_balance": (
        "Opening balance of new tenants (USD)",
        "新租户初始余额（美元）",
    ),
    "settings.log_retention_days": ("Keep request logs (days)", "请求日志保留天数"),
    "settings.session_hours": (
        "Console session idle timeout (hours)",
        "控制台会话空闲超时（小时）",
    ),
    "settings.saved": (
        "Settings saved; gateways reload them now.",
        "设置已保存，网关正在重新加载。",
    ),
    # Tenant view
    "overview.title": ("Overview", "概览"),
    "overview.balance": ("Balance (USD)", "余额（美元）"),
    "overview.available": ("Available (USD)", "可用（美元）"),
    "overview.month_spend": ("Spend this month (USD)", "本月消费（美元）"),
    "overview.month_requests": ("Requests this month", "本月请求数"),
    "overview.month_tokens": ("Tokens this month", "本月 Token 数"),
    "overview.keys": ("Active keys", "有效密钥"),
    "overview.group": ("Group", "分组"),
    "usage.title": ("Usage", "用量"),
    "usage.by_day": ("Spend by day (USD)", "每日消费（美元）"),
    "usage.requests_by_day": ("Requests by day", "每日请求数"),
    "usage.by_model": ("By model", "按模型"),
    "redeem.title": ("Redeem a code", "兑换充值"),
    "redeem.code": ("Code", "兑换码"),
    "redeem.submit": ("Redeem", "兑换"),
    "redeem.done": ("{amount} USD added to your balance.", "已向余额充值 {amount} 美元。"),
    "redeem.invalid": (
        "This code is not valid: unknown, already redeemed, void or expired.",
        "兑换码无效：不存在、已兑换、已作废或已过期。",
    ),
    "redeem.history": ("Redeemed codes", "已兑换的兑换码"),
}


class LangState(rx.State):
    """The console's language, remembered in a cookie for a year."""

    lang: str = rx.Cookie("en", name=LANG_COOKIE, max_age=_YEAR, same_site="lax", path="/")

    @rx.event
    def set_lang(self, lang: str) -> None:
        """Switch to ``lang`` (``en`` or ``zh``)."""
        if lang in LANGS:
            self.lang = lang


def t(key: str) -> rx.Var[str]:
    """Return the label ``key`` in the browser's chosen language.

    Raises:
        KeyError: for an unknown key, when the page is compiled.
    """
    english, chinese = MESSAGES[key]
    return rx.cond(LangState.lang == "zh", chinese, english).to(str)


def tr(lang: str, key: str, **values: object) -> str:
    """Return message ``key`` in ``lang``, with ``values`` filled in."""
    english, chinese = MESSAGES[key]
    text = chinese if lang == "zh" else english
    return text.format(**values) if values else text
