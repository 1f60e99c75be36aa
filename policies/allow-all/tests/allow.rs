use wcp_policy_sdk::testing::RequestBuilder;

#[test]
fn allows_every_step_type() {
    for step_type in [
        "llm_call",
        "tool_call",
        "connector_call",
        "human_task",
        "custom",
    ] {
        let request = RequestBuilder::new(step_type).tool("delete_user").build();
        let decision = allow_all::evaluate(&request);
        assert!(decision.is_allow(), "{step_type}: {decision:?}");
        assert_eq!(decision.reason(), None);
    }
}
